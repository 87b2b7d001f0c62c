"""The checkout service's pricing (the code the AI Ops example's coding agent repairs)."""


def apply_discount(total_cents: int, percent: int) -> int:
    """The total after a percentage discount, in cents."""
    return total_cents - total_cents * percent // 100


def price_per_item(total_cents: int, items: int) -> int:
    """The average price of one item, in cents."""
    return total_cents // items
