"""About the method: what SLBI does and what its hyperparameters mean."""

from __future__ import annotations

import streamlit as st


def about_ui() -> None:
    """The update equations and a plain reading of each hyperparameter."""
    st.markdown("### How SLBI grows a sparse network")
    st.markdown("Each weight tensor $W$ is coupled with a sparse copy $\\Gamma$. One iteration, "
                "with $m$ the momentum of the loss gradient:")
    # one short equation per line: st.latex does not wrap, and a long line is cut on a
    # 1024 px wide page (the sidebar takes a third of it)
    st.latex(r"W \leftarrow W - \alpha\kappa\, m - \frac{\alpha\kappa}{\nu}(W - \Gamma)")
    st.latex(r"z \leftarrow z + \frac{\alpha}{\nu}(W_{old} - \Gamma)")
    st.latex(r"\Gamma \leftarrow \kappa\,\mathrm{prox}_{\lambda}(z)")
    st.latex(r"\mathrm{prox}_\lambda(z)_g = z_g \max\left(0, 1 - \frac{\lambda}{\lVert z_g"
             r"\rVert}\right)")
    st.markdown(
        "- $z$ (the paper's $V$; `z` in the optimizer's state) accumulates how much $W$ pulls "
        "away from $\\Gamma$. A filter $g$ **enters the "
        "support** once $\\lVert z_g\\rVert$ passes $\\lambda$; before that its $\\Gamma_g$ is "
        "exactly zero. Strong filters enter early, weak ones late or never: the path runs from "
        "simple to complex models (an *inverse scale space*).\n"
        "- **lr (α)** is the step size: larger moves faster along the path.\n"
        "- **κ (kappa)** scales Γ and the W step; larger κ makes Γ follow z more closely.\n"
        "- **ν (nu)** is the coupling: small ν ties W tightly to Γ (W is pulled towards the "
        "sparse model, filters enter sooner); large ν lets W train freely and Γ grow slowly.\n"
        "- **λ (lambda)** is the entry threshold: larger λ means fewer filters, entering later.\n"
        "- **Early stopping** picks a point on the path: a sparse $\\Gamma$ whose support is a "
        "subnetwork you can export and retrain. The suggested stop is the sparsest saved "
        "iteration whose compact subnetwork's validation accuracy is within one standard error "
        "of the best (glmnet's *lambda.1se* rule); the test accuracy is only reported.")
