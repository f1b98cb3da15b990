"""
================================================================
FILE: money.py
PATH: /services/lkms102-orders/app/services/money.py
DESCRIPTION: Money rules of orders: Decimal only, scales, rounding, limits, ISO 4217 currencies
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================

The rounding rule (documented in docs/orders.md):

    line_total = round_half_up(quantity × unit_price, 2 decimal places)
    total      = sum(line_total of every line)          (exact: already 2 places)

Quantities have at most 3 decimal places (NUMERIC(12,3)), unit prices at most 2 (NUMERIC(12,2)),
line totals and totals 2 (NUMERIC(18,2)). Floats never take part: every value is a Decimal.
"""

# === IMPORTS ===
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

# === CONSTANTS ===
QUANTITY_PLACES = 3
PRICE_PLACES = 2
QUANTITY_STEP = Decimal("0.001")
MONEY_STEP = Decimal("0.01")
# Column sizes: quantity NUMERIC(12,3), unit_price NUMERIC(12,2), amounts NUMERIC(18,2).
QUANTITY_DIGITS = 12
PRICE_DIGITS = 12
AMOUNT_DIGITS = 18
MAX_AMOUNT = Decimal("9999999999999999.99")  # the largest NUMERIC(18,2)
DEFAULT_CURRENCY = "EUR"

# ISO 4217 codes of circulating currencies (fund codes, precious metals, special drawing rights
# and the testing / "no currency" codes XTS and XXX are not prices and are refused).
_CIRCULATING_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER
    ZAR ZMW ZWG
"""
ISO_4217_CURRENCIES: frozenset[str] = frozenset(_CIRCULATING_CODES.split())


# === ERRORS ===
class AmountTooLargeError(ValueError):
    """A computed amount does not fit NUMERIC(18,2)."""


# === RULES ===
def round_money(amount: Decimal) -> Decimal:
    """Round to 2 decimal places, halves away from zero (ROUND_HALF_UP): 0.005 → 0.01."""
    return amount.quantize(MONEY_STEP, rounding=ROUND_HALF_UP)


def normalize_quantity(quantity: Decimal) -> Decimal:
    """The quantity at its stored scale (3 places); input never has more places than that."""
    return quantity.quantize(QUANTITY_STEP)


def normalize_price(price: Decimal) -> Decimal:
    """The unit price at its stored scale (2 places); input never has more places than that."""
    return price.quantize(MONEY_STEP)


def line_total(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """quantity × unit_price rounded half up to 2 places; AmountTooLargeError above the limit."""
    total = round_money(quantity * unit_price)
    if total > MAX_AMOUNT:
        raise AmountTooLargeError(f"line total {total} exceeds the maximum amount {MAX_AMOUNT}")
    return total


def order_total(line_totals: Iterable[Decimal]) -> Decimal:
    """Sum of the (already rounded) line totals; AmountTooLargeError above the limit."""
    total = sum(line_totals, Decimal("0.00"))
    if total > MAX_AMOUNT:
        raise AmountTooLargeError(f"order total {total} exceeds the maximum amount {MAX_AMOUNT}")
    return round_money(total)


def normalize_currency(code: str) -> str:
    """The ISO 4217 code in upper case; ValueError when it is not a circulating currency."""
    normalized = code.strip().upper()
    if normalized not in ISO_4217_CURRENCIES:
        raise ValueError(f"'{code}' is not an ISO 4217 currency code (for example EUR, USD, CZK)")
    return normalized


def format_decimal(value: Decimal) -> str:
    """A Decimal as a plain string without exponent ('100.000', never '1E+2')."""
    return format(value, "f")
