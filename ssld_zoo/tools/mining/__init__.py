"""`ssld-zoo mine`'s parts, one job each (the command and its public names are `ssld_zoo.tools.mine`'s):

    hashing    the 64-bit DCT perceptual hash and Hamming distances
    settings   what decides a mined list (`MineSettings`) and what a run returns (`MineResult`)
    pool       the pool and evaluation images, streamed decoded once for both the teacher and the hash
    teacher    the frozen teacher with its own eval preprocessing
    excluder   the evaluation images' fingerprints and the nearest one to each pool image
    state      the resumable state (heaps, counts, position) in an .npz without pickle
    outputs    the list file, its summary and plots
    run        `mine()`: the run that ties them together
"""
