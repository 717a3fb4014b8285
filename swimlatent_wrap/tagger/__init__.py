"""WD14 tagging on onnxruntime: images in, sd-scripts `.txt` captions out.

The face other code calls (all heavy imports happen inside these calls, never at import):

    from swimlatent_wrap.tagger.pipeline import TagJob, tag_folder   # the whole run
    from swimlatent_wrap.tagger.caption import CaptionRule          # prefix, thresholds, blacklist
    from swimlatent_wrap.tagger.folder import find_work              # what is still to caption

One module per job: `labels` reads selected_tags.csv, `model_files` finds model.onnx (local
folder or the Hugging Face cache), `session` opens onnxruntime and picks the provider,
`preprocess` turns one image file into the model's input, `decode` runs that in parallel,
`thresholds` decides the cut (the recipe's, else a known model's authors' values, else
0.35 / 0.85), `caption` turns probabilities into a caption line, `record` keeps tags in the
dataset manifest, `writer` writes captions off the inference thread, `terminal` reports,
`pipeline` ties them together.
"""
