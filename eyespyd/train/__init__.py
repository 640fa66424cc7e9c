"""train: the eye-state model, from labelled photos to an int8 TFLite file.

    data      list labelled pictures, split them by picture, detect faces, cache eye context crops
    augment   degrade, light, occlude and jitter those crops (numpy and Pillow)
    fit       the Keras model, training and the full-integer TFLite export (TensorFlow, imported
              inside the functions so this package imports without it)
    metrics   eye-level and photo-level numbers, the threshold table

`python -m eyespyd.train --data ../shared/data` reproduces `models/eye_state.tflite`.
TensorFlow comes with the optional `train` extra: `pip install eyespyd[train]`.
"""
