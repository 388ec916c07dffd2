"""The weights layer: where weights come from and how they are checked (no torch at import).

- `sources`: what `pretrained=` means, and the resolution order for catalogue weights;
- `hub`: downloads through the real huggingface_hub client, sha256-checked;
- `download`: plain HTTP downloads (PaddleClas's host), resumable and bounded in time;
- `layout`: Hub-layout folders (`model.safetensors` + timm `config.json` + card);
- `cards`: model cards and the README table, generated from the catalogue;
- `publish`: uploading a folder to the Hub.
"""
