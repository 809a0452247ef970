"""Write the small posterior file of the installed ArviZ generation (tests/test_arviz_bridge.py).

``python tests/data/make_posterior_files.py`` under ArviZ 0.2x (Python 3.11) writes
``posterior_arviz0.nc``, under ArviZ >= 1 (Python >= 3.12) ``posterior_arviz1.nc``: a NUTS
posterior of a Gaussian mixture on the first 60 Old Faithful eruptions (2 chains x 30 draws,
saved with ``Posterior.save``). The test reads both under whichever ArviZ it runs with, so a
file written by one generation is checked to open in the other.
"""

import pathlib
import warnings

from bayesgmm import GaussianMixture, _arviz
from bayesgmm.datasets import load_faithful


def main():
    X, names = load_faithful()
    X = X[:60]
    gm = GaussianMixture(2, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = gm.fit_posterior(X, num_warmup=60, num_samples=30, num_chains=2, random_state=1, progress_bar=False)
    post.feature_names = list(names)
    out = pathlib.Path(__file__).with_name(f"posterior_arviz{int(_arviz.ARVIZ_1)}.nc")
    post.save(out)
    print("wrote", out)


if __name__ == "__main__":
    main()
