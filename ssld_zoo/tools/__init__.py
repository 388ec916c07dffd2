"""The tools layer: what users run on top of models, weights, data and training.

- `evaluate`: top-1/top-5 on labelled images (`ssld-zoo eval`);
- `bench`: latency and throughput side by side with timm (`ssld-zoo bench`);
- `onnx_export`: ONNX export checked against onnxruntime (`ssld-zoo export`);
- `mine`: SSLD's unlabeled-data mining (`ssld-zoo mine`);
- `backbones`: detection/segmentation helpers (`stage_param_groups`, `fpn_backbone`);
- `release`: converting, proving and publishing the whole zoo (`ssld-zoo release`).
"""
