"""The data layer: images and how they become tensors.

- `cifar`: CIFAR-10 as packed JPEG bytes from the data folder (`ssld_zoo.paths`);
- `transforms`: the preprocessing that belongs to each weight (`ssld_zoo.get_transform`);
- `paddle_preprocess`: PaddleClas's own eval pipeline, pixel for pixel (`get_transform(name, exact=True)`);
- `pixels`: the image contract of training, evaluation, the soft-label cache and mining (bytes in, uint8 tensor out)
  and its decode / resize paths;
- `shards`: WebDataset tar shards, written by `ssld-zoo pack` and read by the `shards:` recipe source.

The training pipeline's image sources, augmentation and batching live in `ssld_zoo.train.data`.
"""
