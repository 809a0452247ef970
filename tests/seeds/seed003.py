"""Seed 003: "16. Gaussian Mixture Model (GMM)" (a course chapter: scikit-learn's whole workflow).

Stretched blobs fitted with the four covariance types, BIC/AIC over k, the grid over k x covariance
type, sampling, the density integrated over a grid, the 4% anomaly rule, an image-clustering grid
(Olivetti faces in the seed), moons density estimation by BIC over k, and the digits after
PCA(0.99, whiten) with full covariances over k = 30..90.

The stages are separate functions of ``(GaussianMixture, size)`` so that ``bench/seeds.py`` can
time them; ``SIZES`` holds the seed's own sizes (``"full"``) and the reduced ones of CI
(``"ci"``). The CI sizes are chosen so that the module stays cheap while every distinct
(n_components, covariance_type, n_init, data shape) still compiles its own programs in bayesgmm:
fewer k, ``n_init=1`` (one program per k and type, shared by every stage on the same data), a
coarser density grid, and fewer k for the digits (the same data and PCA, the same question).
Plotting is left out; the lines of the plotting helpers that use the estimator (``fit``,
``predict``, ``means_``, ``weights_``, ``covariances_`` reshaped per covariance type,
``score_samples`` and ``predict`` on a mesh) are kept.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits, make_blobs, make_moons
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.preprocessing import StandardScaler

SIZES = {
    # the seed's own sizes
    "full": dict(n_init=10, bic_ks=range(1, 11), grid_ks=range(1, 11), resolution=100,
                 plot_resolution=1000, faces_ks=range(5, 150, 5), faces_n_init=10,
                 moon_ks=range(1, 20), digits_ks=np.arange(30, 100, 10), digits_rows=None,
                 gen_samples=100),
    # CI: every distinct (n_components, covariance_type, n_init, data shape) compiles programs in
    # bayesgmm (~5-10 s of CPU each today), so the stages share them: n_init=1; k = 3, 4, 5 for
    # BIC/AIC around their choice 4; the grid at k = 4 (the four types, fitted already by the
    # first stage); moons k = 6, 7 (scikit-learn's choice is either, with 1 or 10 starts); one k
    # in the image grid; digits k = 30, 40 on all rows (on a subsample the two models' choices
    # part: maximum likelihood rewards the reg_covar spikes of components with fewer points than
    # features more and more as n_k falls)
    "ci": dict(n_init=1, bic_ks=range(3, 6), grid_ks=range(4, 5), resolution=20,
               plot_resolution=100, faces_ks=range(5, 10, 5), faces_n_init=1,
               moon_ks=range(6, 8), digits_ks=np.arange(30, 50, 10), digits_rows=None,
               gen_samples=20),
}
COVARIANCE_TYPES = ("full", "tied", "spherical", "diag")


def blobs():
    X, y_true = make_blobs(n_samples=400, centers=4,
                           cluster_std=0.60, random_state=0)
    X = X[:, ::-1]  # flip axes for better plotting

    rng = np.random.RandomState(13)
    X_stretched = np.dot(X, rng.randn(2, 2))
    return X, X_stretched


def plot_gmm(gmm, X, covariance_type="full", label=True, ax=None):
    """The seed's plot_gmm without the drawing: fit, predict and the covariances in 2x2 form."""
    labels = gmm.fit(X).predict(X)
    centers = gmm.means_
    w_factor = 0.2 / gmm.weights_.max()
    if covariance_type == "spherical":
        cov_right_shape = np.array([np.identity(2) * eta for eta in gmm.covariances_])
    elif covariance_type == "diag":
        cov_right_shape = np.array([np.diagflat(eta) for eta in gmm.covariances_])
    elif covariance_type == "tied":
        cov_right_shape = np.array([gmm.covariances_ for i in range(gmm.n_components)])
    else:
        cov_right_shape = gmm.covariances_
    # ADAPTED: the seed's tied branch then overwrites cov_right_shape with the (2, 2) matrix and
    # its draw_ellipse ignores the angle; neither touches the estimator
    return {"labels": labels, "centers": centers, "alphas": gmm.weights_ * w_factor,
            "covariances": cov_right_shape}


# --- 16.1.4: the four covariance types -------------------------------------------------------
def stage_four_fits(GaussianMixture, size, X_stretched):
    n_init = size["n_init"]
    # ADAPTED: random_state=0 added to each (the seed has none)
    gm = GaussianMixture(n_components=4, n_init=n_init, random_state=0)
    gm.fit(X_stretched)
    out = {"converged": gm.converged_, "n_iter": gm.n_iter_, "weights": gm.weights_,
           "means": gm.means_, "covariances": gm.covariances_,
           "proba": gm.predict_proba(X_stretched)}
    gm = GaussianMixture(n_components=4, n_init=n_init, random_state=0)
    out["full"] = plot_gmm(gm, X_stretched)
    gm_spherical = GaussianMixture(
        n_components=4,
        n_init=n_init,
        covariance_type='spherical', random_state=0)
    out["spherical"] = plot_gmm(gm_spherical, X_stretched, covariance_type="spherical")
    gm_diag = GaussianMixture(
        n_components=4,
        n_init=n_init,
        covariance_type='diag', random_state=0)
    out["diag"] = plot_gmm(gm_diag, X_stretched, covariance_type="diag")
    gm_tied = GaussianMixture(
        n_components=4,
        n_init=n_init,
        covariance_type='tied', random_state=0)
    out["tied"] = plot_gmm(gm_tied, X_stretched, covariance_type="tied")
    return out


# --- choosing k by AIC and BIC ---------------------------------------------------------------
def stage_bic_aic(GaussianMixture, size, X):
    ks = list(size["bic_ks"])
    gms_per_k = [GaussianMixture(n_components=k, n_init=size["n_init"], random_state=42).fit(X)
                 for k in ks]

    bics = [model.bic(X) for model in gms_per_k]
    aics = [model.aic(X) for model in gms_per_k]

    # ADAPTED: + ks[0] (the seed's + 1: its k start at 1)
    arg_min_aic = np.argmin(aics) + ks[0]
    arg_min_bic = np.argmin(bics) + ks[0]
    return {"ks": ks, "bics": np.array(bics), "aics": np.array(aics), "arg_min_aic": int(arg_min_aic),
            "arg_min_bic": int(arg_min_bic)}


# --- choosing k and the covariance type by BIC -----------------------------------------------
def stage_grid(GaussianMixture, size, X):
    min_bic = np.inf  # ADAPTED: np.infty was removed in NumPy 2
    bics = {}
    for k in size["grid_ks"]:
        for covariance_type in COVARIANCE_TYPES:
            # ADAPTED: random_state=42 as in the loop over k above (the seed elides the line)
            bic = GaussianMixture(n_components=k, n_init=size["n_init"],
                                  covariance_type=covariance_type, random_state=42).fit(X).bic(X)
            bics[k, covariance_type] = bic
            if bic < min_bic:
                min_bic = bic
                best_k = k
                best_covariance_type = covariance_type
    return {"best_k": best_k, "best_covariance_type": best_covariance_type, "bics": bics}


# --- sampling, density, anomalies ------------------------------------------------------------
def stage_sample_density_anomalies(GaussianMixture, size, X_stretched):
    # final model
    gmm_tied = GaussianMixture(
        n_components=4,
        n_init=size["n_init"],
        covariance_type='tied', random_state=0).fit(X_stretched)  # ADAPTED: random_state=0

    # 隨機生成 5 筆 data
    X_new, y_new = gmm_tied.sample(5)
    new_density = np.exp(gmm_tied.score_samples(X_new))

    resolution = size["resolution"]  # ADAPTED: 100 in the seed (4 million points); 20 in CI
    grid = np.arange(-10, 10, 1 / resolution)
    xx, yy = np.meshgrid(grid, grid)
    X_full = np.vstack([xx.ravel(), yy.ravel()]).T

    pdf = np.exp(gmm_tied.score_samples(X_full))
    pdf_probas = pdf * (1 / resolution) ** 2
    integral = pdf_probas.sum()

    # plot_gaussian_mixture(gmm_tied, X_stretched): its estimator calls on the seed's mesh
    r = size["plot_resolution"]
    mins = X_stretched.min(axis=0) - 0.1
    maxs = X_stretched.max(axis=0) + 0.1
    xx, yy = np.meshgrid(np.linspace(mins[0], maxs[0], r),
                         np.linspace(mins[1], maxs[1], r))
    Z = -gmm_tied.score_samples(np.c_[xx.ravel(), yy.ravel()])
    Z = Z.reshape(xx.shape)
    Zp = gmm_tied.predict(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)

    densities = gmm_tied.score_samples(X_stretched)
    density_threshold = np.percentile(densities, 4)
    anomalies = X_stretched[densities < density_threshold]
    return {"gmm": gmm_tied, "X_new": X_new, "y_new": y_new, "new_density": new_density,
            "integral": float(integral), "Z": Z, "Z_labels": Zp, "anomalies": anomalies,
            "anomaly_mask": densities < density_threshold}


# --- 16.4.1: image clustering (Olivetti faces in the seed) -----------------------------------
def faces_data():
    """ADAPTED: ``fetch_olivetti_faces`` downloads its data; the digits ship with scikit-learn.
    400 of them (40 per digit, as the faces are 10 per person), scaled to [0, 1] like the faces."""
    digits = load_digits()
    pick = StratifiedShuffleSplit(n_splits=1, train_size=400, random_state=0)
    idx, _ = next(pick.split(digits.data, digits.target))
    return digits.data[idx] / 16.0, digits.target[idx]


def stage_faces(GaussianMixture, size):
    data, target = faces_data()
    strat_split = StratifiedShuffleSplit(n_splits=1, test_size=40, random_state=42)
    train_valid_idx, test_idx = next(strat_split.split(data, target))
    X_train_valid = data[train_valid_idx]
    y_train_valid = target[train_valid_idx]
    X_test = data[test_idx]

    strat_split = StratifiedShuffleSplit(n_splits=1, test_size=80, random_state=43)
    train_idx, valid_idx = next(strat_split.split(X_train_valid, y_train_valid))
    X_train = X_train_valid[train_idx]
    X_valid = X_train_valid[valid_idx]

    pca = PCA(0.99)
    X_train_pca = pca.fit_transform(X_train)
    X_valid_pca = pca.transform(X_valid)
    X_test_pca = pca.transform(X_test)

    gm2 = GaussianMixture(n_components=40, random_state=42)
    y_pred = gm2.fit_predict(X_train_pca)

    # 選 best k, covariance_type.
    bic_list = []
    aic_list = []
    converage_list = []
    ks = list(size["faces_ks"])
    for k in ks:
        for covariance_type in COVARIANCE_TYPES:
            # ADAPTED: the seed elides this call; its arguments as in the loops above
            gmm = GaussianMixture(n_components=k, n_init=size["faces_n_init"],
                                  covariance_type=covariance_type, random_state=42).fit(X_train_pca)
            bic_list.append(gmm.bic(X_train_pca))
            aic_list.append(gmm.aic(X_train_pca))
            converage_list.append(gmm.converged_)
    bic_list = np.array(bic_list).reshape(len(ks), 4)  # ADAPTED: (29, 4) in the seed
    aic_list = np.array(aic_list).reshape(len(ks), 4)
    # the seed's second loop refits the same grid to find the minimum; the same fits, so the
    # minimum is read from bic_list (ADAPTED)
    i, j = np.unravel_index(np.argmin(bic_list), bic_list.shape)
    best_k, best_covariance_type = ks[i], COVARIANCE_TYPES[j]
    gm = GaussianMixture(n_components=best_k, covariance_type=best_covariance_type, random_state=42)
    y_pred_best = gm.fit_predict(X_train_pca)
    return {"X_train_pca": X_train_pca, "n_features": X_train_pca.shape[1], "y_pred": y_pred,
            "gm2": gm2, "bic_list": bic_list, "aic_list": aic_list,
            "converged": np.array(converage_list), "best_k": best_k,
            "best_covariance_type": best_covariance_type, "y_pred_best": y_pred_best,
            "valid_score": gm.score(X_valid_pca), "test_score": gm.score(X_test_pca)}


# --- 16.4.2: density estimation on the moons -------------------------------------------------
def stage_moons(GaussianMixture, size):
    Xmoon, ymoon = make_moons(200, noise=.05, random_state=0)
    gmm2 = GaussianMixture(n_components=2, covariance_type='full', random_state=0)
    two = plot_gmm(gmm2, Xmoon)

    n_components = size["moon_ks"]
    models = [GaussianMixture(n, covariance_type='full', random_state=0)
              for n in n_components]
    # ADAPTED: the seed fits `data` here, which at that point is undefined (it is the digits of
    # the next section): the moons, as the text says
    bics = [model.fit(Xmoon).bic(Xmoon) for model in models]
    arg_min_bic = np.argmin(bics) + n_components[0]  # ADAPTED: + 1 in the seed (k from 1)

    gmm10 = GaussianMixture(n_components=arg_min_bic, covariance_type='full', random_state=0)
    ten = plot_gmm(gmm10, Xmoon, label=False)
    moon_gen, moon_cluster = gmm10.sample(200)
    return {"Xmoon": Xmoon, "two": two, "ks": list(n_components), "bics": np.array(bics),
            "arg_min_bic": int(arg_min_bic), "gmm": gmm10, "ten": ten, "moon_gen": moon_gen,
            "moon_cluster": moon_cluster}


# --- 16.4.3: digits, PCA(0.99, whiten), full covariances -------------------------------------
def digits_data(size):
    digits = load_digits()
    X = digits.data
    if size["digits_rows"] is not None:  # ADAPTED: a subsample in CI (the first rows)
        X = X[: size["digits_rows"]]
    # 降維
    pca = PCA(0.99, whiten=True, random_state=0)  # ADAPTED: random_state=0 (its solver may be randomised)
    data = pca.fit_transform(X)
    return pca, data


def stage_digits(GaussianMixture, size):
    pca, data = digits_data(size)
    n_components = size["digits_ks"]
    models = [GaussianMixture(n, covariance_type='full', random_state=0)
              for n in n_components]
    bics = [model.fit(data).bic(data) for model in models]

    arg_min_bic = n_components[np.argmin(bics)]
    # the seed then fits GaussianMixture(70, ...) (its arg min); ADAPTED: the arg min found here
    gmm70 = models[int(np.argmin(bics))]
    data_new, data_target = gmm70.sample(size["gen_samples"])

    digits_new = pca.inverse_transform(data_new)
    return {"data": data, "ks": list(n_components), "bics": np.array(bics),
            "arg_min_bic": int(arg_min_bic), "models": models, "digits_new": digits_new,
            "data_target": data_target}


def run(GaussianMixture, full=False):
    size = SIZES["full" if full else "ci"]
    X, X_stretched = blobs()
    # 16.1.1: the seed's preprocessing before KMeans (KMeans and its plots left out: no GMM)
    col_normalizer = StandardScaler()
    X_stretch_norm = col_normalizer.fit_transform(X_stretched)
    pca = PCA(n_components=2)
    pca.fit_transform(X_stretch_norm)
    return {
        "four": stage_four_fits(GaussianMixture, size, X_stretched),
        "bic_aic": stage_bic_aic(GaussianMixture, size, X),
        "grid": stage_grid(GaussianMixture, size, X),
        "density": stage_sample_density_anomalies(GaussianMixture, size, X_stretched),
        "faces": stage_faces(GaussianMixture, size),
        "moons": stage_moons(GaussianMixture, size),
        "digits": stage_digits(GaussianMixture, size),
    }
