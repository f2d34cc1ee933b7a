"""Linear probes and linear CKA on block features."""
import torch
import torch.nn.functional as F


def linear_probe_accuracy(train_x: torch.Tensor,
                          train_y: torch.Tensor,
                          val_x: torch.Tensor,
                          val_y: torch.Tensor,
                          weight_decay: float = 1e-3,
                          max_iter: int = 300) -> float:
    """Val accuracy (%) of a linear softmax classifier fit on train features.

    Features are standardised with the train statistics; the classifier
    minimises cross-entropy + ``weight_decay``·||W||² with full-batch L-BFGS
    from zero, so the result is deterministic.
    """
    mean = train_x.mean(0)
    std = train_x.std(0).clamp_min(1e-6)
    train_x = ((train_x - mean) / std).double()
    val_x = ((val_x - mean) / std).double()
    num_classes = int(max(train_y.max(), val_y.max())) + 1
    weight = torch.zeros(train_x.shape[1], num_classes, dtype=torch.float64,
                         requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter,
                                  line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y)
        loss = loss + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        pred = (val_x @ weight + bias).argmax(1)
    return float((pred == val_y).double().mean() * 100)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) of two ``(N, D)`` feature sets.

    ``||Yᵀ X||²_F / (||Xᵀ X||_F ||Yᵀ Y||_F)`` on column-centred features,
    evaluated through the N x N Gram matrices when that is smaller.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f'CKA needs the same examples: {x.shape[0]} vs '
                         f'{y.shape[0]}')
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    if x.shape[0] < max(x.shape[1], y.shape[1]):
        gx, gy = x @ x.T, y @ y.T
        cross, norm_x, norm_y = (gx * gy).sum(), gx.norm(), gy.norm()
    else:
        cross = (y.T @ x).pow(2).sum()
        norm_x, norm_y = (x.T @ x).norm(), (y.T @ y).norm()
    return float(cross / (norm_x * norm_y))
