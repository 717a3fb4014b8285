"""A stand-in for an sd-scripts training script: parses its command line and --config_file with a
parser generated from the option manifest, then reports what it read as JSON. Exit 2 on a parse
error, as argparse does; exit 3 when the config file holds a key the script does not know."""

import json
import sys

from swimlatent_wrap.sdscripts.parser import build_parser, read_config_like_sd_scripts


def main() -> int:
    script, argv = sys.argv[1], sys.argv[2:]
    parser = build_parser(script)
    args = read_config_like_sd_scripts(parser.parse_args(argv), parser, argv)
    known = {action.dest for action in parser._actions}
    unknown = sorted(k for k in vars(args) if k not in known)
    if unknown:
        print(f"unknown config keys: {unknown}", file=sys.stderr)
        return 3
    print(json.dumps({k: v for k, v in vars(args).items()}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
