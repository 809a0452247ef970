"""Seed 004: "Gaussian Mixture Model" (a tutorial page: a mixture density as a weighted sum).

Six Gaussians with random means, standard deviations and weights; each weighted density on a grid,
then their sum, "the look of the new distribution". The seed uses no estimator; with bayesgmm the
same mixture is a :class:`bayesgmm.GMMParams` whose density (``bayesgmm.core.density``) the test
holds equal to the seed's sum.
"""

import numpy as np


def gaussian(x, mean, stddev):
    exponent = - (((x - mean) / stddev) ** 2) / 2
    numerator = np.exp(exponent)
    denominator = (stddev * np.sqrt(2 * np.pi))
    return numerator / denominator


def run(full=False):
    np.random.seed(0)  # ADAPTED: the seed draws without a seed
    # Choose number of gaussians
    num_gaussians = 6

    means = np.random.randn(num_gaussians)
    # stddev should be larger than 0
    stddevs = abs(np.random.randn(num_gaussians))

    # weights should sum to 1
    weights = abs(np.random.randn(num_gaussians))
    weights /= weights.sum()
    x = (np.arange(-200, 201) / 20).tolist()

    curves = []
    for n in range(num_gaussians):
        y = [gaussian(x[i], means[n], stddevs[n]) * weights[n] for i in range(len(x))]
        curves.append(y)  # ADAPTED: plt.plot(x, y) -> kept for the test

    y = [0] * len(x)
    for n in range(num_gaussians):
        for i in range(len(x)):
            y[i] += gaussian(x[i], means[n], stddevs[n]) * weights[n]
    # ADAPTED: plt.plot(x, y); plt.show() left out
    return {"x": np.array(x), "y": np.array(y), "curves": np.array(curves), "means": means,
            "stddevs": stddevs, "weights": weights}
