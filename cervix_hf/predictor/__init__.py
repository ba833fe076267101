"""The predictor step: a saved model's backbone and preprocessing, run without torch.

``preprocess`` reproduces timm's evaluation transform in Pillow and numpy; ``onnx_backbone``
runs the model's ``backbone.onnx`` with ONNX Runtime after checking its SHA-256.
"""
