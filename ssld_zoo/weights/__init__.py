"""The weights layer: where weights come from and how they are checked (no torch at import).

- `resolve`: a weights source (catalogue name, `hf-hub:` id, Hub-layout folder, file) → a verified local file and
  what a model needs to load it (the resolution order);
- `sources`: what a weights argument names (`parse_source`);
- `hub`: downloads through the real huggingface_hub client, sha256-checked;
- `validation`: what comes with outside weights, checked in full before use: safetensors headers, timm
  `config.json` (schema, `model_args` keys that steer loading), Hub repo ids and revisions;
- `download`: plain HTTP downloads (PaddleClas's host), resumable and bounded in time;
- `layout`: Hub-layout folders (`model.safetensors` + timm `config.json` + card);
- `cards`: model cards and the README table, generated from the catalogue;
- `publish`: uploading a folder to the Hub.
"""
