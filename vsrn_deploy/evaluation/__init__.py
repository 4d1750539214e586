"""Retrieval evaluation (numpy only): the authors' recall protocol (`recall`) and the one
comparator of two backends' outputs (`compare`).

`vsrn_deploy.evaluation.i2t` / `t2i` are public names (README); they live in `recall`.
"""

from vsrn_deploy.evaluation.recall import (
                                           CAPTIONS_PER_IMAGE,
                                           Recalls,
                                           format_table,
                                           i2t,
                                           i2t_from_sims,
                                           recall_report,
                                           recall_report_from_sims,
                                           similarity,
                                           t2i,
                                           t2i_from_sims,
)

__all__ = ["CAPTIONS_PER_IMAGE", "Recalls", "format_table", "i2t", "i2t_from_sims", "recall_report",
           "recall_report_from_sims", "similarity", "t2i", "t2i_from_sims"]
