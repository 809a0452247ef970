"""Seed 001: "Mixtures of Gaussians and the EM algorithms" (a hand-written EM, 1-D, two components).

The seed's M-step has two bugs (documented in ``notebooks/02_em_from_scratch.ipynb``): the standard
deviations use the means *before* the M-step (``current_mus``), and the weights ("priors") are hard
counts of the points whose unweighted density is largest, not the responsibilities' shares. It
converges, to a point that is not a maximum of the likelihood (its printed output ends at
``mus=[-0.0156, 1.8741]``, ``sigmas=[1.0914, 0.9043]``, ``priors=[0.43, 0.57]``). ``run`` runs the seed's
EM as written (to reproduce that output) and after the documented fix, and the ``GaussianMixture``
given (maximum likelihood when it is bayesgmm's: ``prior=None``) from the seed's start.
"""

import operator
import warnings

import numpy as np


def _data():
    np.random.seed(0)
    x0 = np.random.normal(0, 1, 50)
    x0 = np.concatenate((x0, np.random.normal(2, 1, 50)),
                        axis=0)
    return x0


x0 = _data()
mus0 = np.array([
    0, 1
])
sigmas0 = np.array([
    2, 2
])


def gauss(x, mu, sigma):
    """

    :param x:
    :param mu:
    :param sigma:
    :return: pdf(x)
    """
    numerator = np.exp(
        -0.5 * ((x - mu) / sigma) ** 2
    )
    denominator = np.sqrt(2 * np.pi * sigma ** 2)
    return numerator / denominator


def e_step(mus=mus0, sigmas=sigmas0, x=x0, priors=np.ones(len(mus0)) / len(mus0)):
    """

    :param mus: gaussian centers, an array of shape (m,)
    :param sigmas: gaussian standard deviations, an array of shape (m,)
    :param x: n samples with no labels
    :return: m by n array, where m is # classes
    """
    assert len(mus) == len(sigmas), "mus and sigmas doesn't have the same length"
    m = len(mus)
    n = len(x)
    w = np.zeros(shape=(m, n))
    for j in range(m):
        for i in range(n):
            w[j][i] = gauss(x=x[i], mu=mus[j], sigma=sigmas[j]) * priors[j]
    w_sum_wrt_j = np.sum(w, axis=0)  # note j is the row index
    for j in range(m):
        w[j, :] = w[j, :] / w_sum_wrt_j
    return w


def m_step(w, current_mus, x=x0):
    """The seed's M-step, as written (both bugs).

    :param w: m by n array, where m is # classes
    :return: mus: gaussian centers, an array of shape (m,)
             sigmas: gaussian standard deviations, an array of shape (m,)
    """
    m, n = w.shape
    mus = np.zeros(shape=(m))
    sigmas = np.zeros(shape=(m))
    for j in range(m):
        mus[j] = np.dot(
            w[j, :], x
        )
    mus /= np.sum(w, axis=1)
    for j in range(m):
        sigmas[j] = np.sqrt(np.dot(
            w[j, :], (x - current_mus[j]) ** 2
        ))
    sigmas /= np.sqrt(np.sum(w, axis=1))

    priors = np.zeros(shape=(len(mus)))
    for i in range(n):
        tmp = list(map(
            gauss, [x[i]] * m, mus, sigmas
        ))
        tmpmaxindex, tmpmax = max(
            enumerate(tmp), key=operator.itemgetter(1)
        )
        priors[tmpmaxindex] += 1 / n
    return mus, sigmas, priors


def m_step_fixed(w, current_mus, x=x0):
    """ADAPTED: the seed's M-step after the documented fix: the standard deviations about the
    *new* means, and the weights the responsibilities' shares ``sum_i w[j, i] / n``."""
    m, n = w.shape
    mus = np.zeros(shape=(m))
    sigmas = np.zeros(shape=(m))
    for j in range(m):
        mus[j] = np.dot(
            w[j, :], x
        )
    mus /= np.sum(w, axis=1)
    for j in range(m):
        sigmas[j] = np.sqrt(np.dot(
            w[j, :], (x - mus[j]) ** 2  # ADAPTED (bug 1): mus, not current_mus
        ))
    sigmas /= np.sqrt(np.sum(w, axis=1))
    priors = np.sum(w, axis=1) / n  # ADAPTED (bug 2): soft shares, not hard counts
    return mus, sigmas, priors


def solve(x=x0, priors=np.ones(len(mus0)) / len(mus0), m_step=m_step, n_iter=500):
    mus = mus0
    sigmas = sigmas0
    for k in range(n_iter):
        w = e_step(mus=mus, sigmas=sigmas, x=x, priors=priors)
        mus, sigmas, priors = m_step(w, current_mus=mus, x=x0)
        # ADAPTED: no print per iteration; the result is returned
    return mus, sigmas, priors


def log_likelihood(mus, sigmas, priors, x=x0):
    return float(np.sum(np.log(sum(p * gauss(x, m, s) for m, s, p in zip(mus, sigmas, priors)))))


def run(GaussianMixture, full=False, ml=None):
    """ADAPTED: ``if __name__ == __main__: solve()`` (a NameError: ``__main__`` unquoted) becomes
    this function. ``ml``: keyword arguments that make ``GaussianMixture`` maximum likelihood
    (``{"prior": None}`` for bayesgmm, ``{}`` for scikit-learn)."""
    seed = solve(m_step=m_step)
    fixed = solve(m_step=m_step_fixed)
    n_iter = 500
    gm = GaussianMixture(
        n_components=2, weights_init=np.array([0.5, 0.5]), means_init=mus0[:, None].astype(float),
        precisions_init=(1.0 / sigmas0.astype(float) ** 2)[:, None, None], reg_covar=0.0, tol=0.0,
        max_iter=n_iter, **(ml or {}),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: "did not converge" after exactly n_iter iterations
        gm.fit(x0[:, None])
    return {
        "seed": seed, "fixed": fixed, "gm": gm,
        "seed_loglik": log_likelihood(*seed), "fixed_loglik": log_likelihood(*fixed),
        "gm_params": (gm.means_.ravel(), np.sqrt(gm.covariances_.ravel()), gm.weights_),
    }
