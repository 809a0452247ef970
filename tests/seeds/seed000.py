"""Seed 000: "Understanding Gaussian Mixture Models" (a Q&A on ``score_samples``).

Three 1-D Gaussians (17000 draws), a 3-component full-covariance fit, its density on a grid from
``score_samples``, and the density rebuilt by hand as a weighted sum of Gaussians -- in the
question's version (amplitude ``w``, then the whole sum normalised by its integral: wrong) and the
answer's (each Gaussian normalised to unit area, then weighted by ``w``: the mixture density).
"""

import numpy as np

# ADAPTED: np.trapz was removed in NumPy 2 (np.trapezoid is the same rule)
_trapz = getattr(np, "trapezoid", None) or getattr(np, "trapz")


# Define simple gaussian
def gauss_function(x, amp, x0, sigma):
    return amp * np.exp(-(x - x0) ** 2. / (2. * sigma ** 2.))


def run(GaussianMixture, full=False):
    np.random.seed(0)  # ADAPTED: the seed draws without a seed
    # Generate sample from three gaussian distributions
    samples = np.random.normal(-0.5, 0.2, 2000)
    samples = np.append(samples, np.random.normal(-0.1, 0.07, 5000))
    samples = np.append(samples, np.random.normal(0.2, 0.13, 10000))

    # Fit GMM
    # ADAPTED: random_state=0 (the seed has none: every run would start elsewhere)
    gmm = GaussianMixture(n_components=3, covariance_type="full", tol=0.001, random_state=0)
    gmm = gmm.fit(X=np.expand_dims(samples, 1))

    # Evaluate GMM
    gmm_x = np.linspace(-2, 1.5, 5000)
    gmm_y = np.exp(gmm.score_samples(gmm_x.reshape(-1, 1)))

    # The question: construct function manually as sum of gaussians
    gmm_y_sum = np.full_like(gmm_x, fill_value=0, dtype=np.float32)
    for m, c, w in zip(gmm.means_.ravel(), gmm.covariances_.ravel(),
                       gmm.weights_.ravel()):
        gmm_y_sum += gauss_function(x=gmm_x, amp=w, x0=m, sigma=np.sqrt(c))
    # Normalize so that integral is 1
    gmm_y_sum /= _trapz(gmm_y_sum, gmm_x)
    question_sum = gmm_y_sum

    # The answer: each Gaussian normalised, then weighted
    gmm_y_sum = np.full_like(gmm_x, fill_value=0, dtype=np.float32)
    for m, c, w in zip(gmm.means_.ravel(), gmm.covariances_.ravel(), gmm.weights_.ravel()):
        gauss = gauss_function(x=gmm_x, amp=1, x0=m, sigma=np.sqrt(c))
        gmm_y_sum += gauss / _trapz(gauss, gmm_x) * w
    # ADAPTED: the histogram and the plots (ax.hist(normed=True) fails in matplotlib >= 3.1) left out

    order = np.argsort(gmm.means_.ravel())
    return {
        "gmm": gmm, "samples": samples, "gmm_x": gmm_x, "gmm_y": gmm_y,
        "question_sum": question_sum, "answer_sum": gmm_y_sum,
        "integral": float(_trapz(gmm_y, gmm_x)),
        "means": gmm.means_.ravel()[order], "sds": np.sqrt(gmm.covariances_.ravel()[order]),
        "weights": gmm.weights_[order],
    }
