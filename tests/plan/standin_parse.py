"""A stand-in for an sd-scripts training script: parses its command line and --config_file with a
parser generated from the option manifest, then reports what it read as JSON. Exit 2 on a parse
error, as argparse does; exit 3 when the config file holds a key the script does not know."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from swimlatent_wrap.sdscripts.parser import build_parser  # noqa: E402
from tests.train.standin_lib import read_config_from_file  # noqa: E402  (the training stand-ins' reader)


def main() -> int:
    script, argv = sys.argv[1], sys.argv[2:]
    parser = build_parser(script)
    sys.argv = [sys.argv[0], *argv]  # read_config_from_file parses sys.argv again, as sd-scripts does
    args = read_config_from_file(parser.parse_args(argv), parser)
    known = {action.dest for action in parser._actions}
    unknown = sorted(k for k in vars(args) if k not in known)
    if unknown:
        print(f"unknown config keys: {unknown}", file=sys.stderr)
        return 3
    print(json.dumps({k: v for k, v in vars(args).items()}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
