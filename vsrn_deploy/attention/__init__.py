"""`vsrn_deploy.attention.attention_map`, a public name (README): the code lives in
`vsrn_deploy.search.attention`."""

from vsrn_deploy.search.attention import (
                                          attention_map,
                                          box_extent,
                                          boxes_in_pixels,
                                          region_ranks,
                                          render_attention,
                                          save_attention_png,
)

__all__ = ["attention_map", "box_extent", "boxes_in_pixels", "region_ranks", "render_attention",
           "save_attention_png"]
