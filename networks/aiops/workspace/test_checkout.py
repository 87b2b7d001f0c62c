import unittest

from checkout import apply_discount, price_per_item


class CheckoutTest(unittest.TestCase):
    def test_discount(self) -> None:
        self.assertEqual(apply_discount(1000, 10), 900)

    def test_price_per_item(self) -> None:
        self.assertEqual(price_per_item(900, 3), 300)

    def test_an_empty_cart_costs_nothing_per_item(self) -> None:
        self.assertEqual(price_per_item(0, 0), 0)


if __name__ == "__main__":
    unittest.main()
