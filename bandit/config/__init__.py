"""One shop's configuration: ``cartwheel.toml`` -> :class:`~bandit.config.shop.ShopConfig`, the
embedded default and example shops, and the generated reference page."""
