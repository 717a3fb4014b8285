"""Run by sd-scripts' Python (contract tier): sd-scripts' own WD14 preprocess_image on each image.

    SD_PYTHON sd_wd14_preprocess.py SD_SCRIPTS OUT.npz IMAGE...
"""

import importlib.util
import sys

import numpy as np
from PIL import Image

checkout, out, *images = sys.argv[1:]
sys.path.insert(0, checkout)
spec = importlib.util.spec_from_file_location("wd14", f"{checkout}/finetune/tag_images_by_wd14_tagger.py")
wd14 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wd14)
np.savez(out, *[wd14.preprocess_image(Image.open(path)) for path in images])
