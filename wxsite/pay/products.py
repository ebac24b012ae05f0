"""The demo shop: what there is to buy (amounts in fen)."""

PRODUCTS = {
    "coffee": {"name": "一杯咖啡", "price": 1200, "desc": "现磨美式，门店自取"},
    "tea": {"name": "一壶茶", "price": 2800, "desc": "龙井一壶，两人份"},
    "card": {"name": "会员月卡", "price": 9900, "desc": "30 天内每天一杯"},
}


def yuan(fen):
    """Show fen as yuan: 1200 → "12.00"."""
    return f"{fen // 100}.{fen % 100:02d}"
