"""Shared test settings: detector configurations small enough for a 2-core CI machine."""

TINY_1D = dict(
    dims=1,
    channels=8,
    channel_mult=(1, 2),
    attention=False,
    timesteps=50,
    t0=5,
    train_steps=6,
    batch_size=4,
    # one draw per map keeps the suite fast; test_batch_invariance and the CLI tests score with the default's four
    n_reconstructions=1,
    # the plain |x - x̂| map; the default's label-free choice ("auto") is tested in test_synthetic and the CLI tests
    map_structure="none",
    verbose=False,
    device="cpu",
    random_state=0,
)
TINY_2D = {**TINY_1D, "dims": 2}

# The CLI's options for a tiny diffusion model: seconds on one core.
TINY_CLI = [
    "--method",
    "rddpm:timesteps=50,attention=false,clean_rounds=2",
    "--channels",
    "8",
    "--train-steps",
    "4",
    "--batch-size",
    "4",
    "--t0",
    "5",
    "--device",
    "cpu",
]
