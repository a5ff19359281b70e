"""Places, networks, names and prices the synthetic data is drawn from (``vigil_lab.synth``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # the first day of generated data, unless told otherwise


@dataclass(frozen=True)
class City:
    name: str
    country: str
    lat: float
    lon: float
    tz: str


@dataclass(frozen=True)
class Country:
    code: str
    locale: str
    weight: float
    cities: tuple[City, ...]
    isps: tuple[tuple[int, int, int], ...]  # (asn, first octet, second octet) of a block it announces
    phones: tuple[str, ...]  # templates, '#' is a random digit
    families: tuple[str, ...]


def _c(code: str, tz: str, *cities: tuple[str, float, float]) -> tuple[City, ...]:
    return tuple(City(n, code, lat, lon, tz) for n, lat, lon in cities)


COUNTRIES: dict[str, Country] = {c.code: c for c in (
    Country("KR", "ko", 0.20, _c("KR", "Asia/Seoul", ("Seoul", 37.5665, 126.978),
                                 ("Busan", 35.1796, 129.0756), ("Incheon", 37.4563, 126.7052)),
            ((4766, 121, 134), (9318, 175, 223), (3786, 106, 101)), ("+8210########",),
            ("kim", "lee", "park", "choi", "jung")),
    Country("JP", "ja", 0.15, _c("JP", "Asia/Tokyo", ("Tokyo", 35.6762, 139.6503),
                                 ("Osaka", 34.6937, 135.5023), ("Fukuoka", 33.5904, 130.4017)),
            ((4713, 153, 156), (17676, 126, 54), (2516, 106, 130)), ("+8190########", "+8180########"),
            ("sato", "suzuki", "takahashi", "tanaka", "ito")),
    Country("CN", "zh-CN", 0.10, _c("CN", "Asia/Shanghai", ("Shanghai", 31.2304, 121.4737),
                                    ("Beijing", 39.9042, 116.4074), ("Shenzhen", 22.5431, 114.0579)),
            ((4134, 180, 160), (4837, 123, 120), (9808, 112, 10)), ("+8613#########", "+8618#########"),
            ("wang", "li", "zhang", "liu", "chen")),
    Country("TW", "zh-TW", 0.10, _c("TW", "Asia/Taipei", ("Taipei", 25.033, 121.5654),
                                    ("Kaohsiung", 22.6273, 120.3014), ("Taichung", 24.1477, 120.6736)),
            ((3462, 1, 161), (24158, 49, 216)), ("+8869########",), ("chen", "lin", "huang", "chang", "wu")),
    Country("US", "en", 0.15, _c("US", "America/New_York", ("New York", 40.7128, -74.006))
            + _c("US", "America/Los_Angeles", ("San Francisco", 37.7749, -122.4194))
            + _c("US", "America/Chicago", ("Chicago", 41.8781, -87.6298), ("Austin", 30.2672, -97.7431)),
            ((7922, 73, 92), (701, 108, 46), (7018, 99, 120)),
            ("+121255501##", "+141555501##", "+131255501##", "+151255501##"), ("smith", "johnson", "garcia")),
    Country("GB", "en", 0.08, _c("GB", "Europe/London", ("London", 51.5074, -0.1278),
                                 ("Manchester", 53.4808, -2.2426)),
            ((2856, 86, 150), (5089, 82, 24), (5607, 90, 200)), ("+447700900###",),
            ("jones", "taylor", "brown")),
    Country("DE", "en", 0.08, _c("DE", "Europe/Berlin", ("Berlin", 52.52, 13.405),
                                 ("Munich", 48.1351, 11.582), ("Hamburg", 53.5511, 9.9937)),
            ((3320, 91, 33), (3209, 88, 64)), ("+49151########",), ("mueller", "schmidt", "schneider")),
    Country("BR", "en", 0.07, _c("BR", "America/Sao_Paulo", ("São Paulo", -23.5505, -46.6333),
                                 ("Rio de Janeiro", -22.9068, -43.1729)),
            ((26599, 177, 32), (28573, 187, 12)), ("+55119########",), ("silva", "santos", "oliveira")),
    Country("SG", "en", 0.07, _c("SG", "Asia/Singapore", ("Singapore", 1.3521, 103.8198)),
            ((3758, 116, 86), (4657, 101, 127)), ("+659#######", "+658#######"), ("tan", "lim", "ng")),
)}
# where attackers log in from: (city, asn, first octet, second octet, hosting/VPN)
ATTACKERS: tuple[tuple[City, int, int, int, bool], ...] = (
    (City("Lagos", "NG", 6.5244, 3.3792, "Africa/Lagos"), 29465, 105, 112, False),
    (City("Moscow", "RU", 55.7558, 37.6173, "Europe/Moscow"), 12389, 95, 24, False),
    (City("Ho Chi Minh City", "VN", 10.8231, 106.6297, "Asia/Ho_Chi_Minh"), 7552, 171, 224, False),
    (City("Amsterdam", "NL", 52.3676, 4.9041, "Europe/Amsterdam"), 14061, 188, 166, True),
    (City("Bucharest", "RO", 44.4268, 26.1025, "Europe/Bucharest"), 8708, 86, 120, False),
    (City("Ashburn", "US", 39.0438, -77.4874, "America/New_York"), 16509, 3, 80, True),
)
TRAVEL = {"KR": "JP SG TW US", "JP": "KR TW US SG", "CN": "JP SG KR", "TW": "JP KR", "US": "GB JP DE",
          "GB": "DE US", "DE": "GB US", "BR": "US", "SG": "JP KR GB"}
GIVEN = {"ko": "minjun seoyeon jiho haeun doyun", "ja": "haruto yui sota himari ren aoi",
         "zh-CN": "wei fang jing lei yan hao", "zh-TW": "chihao yating jiahui zhiwei shuhua",
         "en": "alex sam jordan emma lucas mia noah sofia lena jonas ana"}
UA = {"ios": "VigilExchange/7.4.1 (iPhone; iOS 18.3; Scale/3.00)",
      "android": "VigilExchange/7.4.1 (Linux; Android 15; SM-S928B)",
      "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/133.0.0.0 Safari/537.36",
      "api": "python-requests/2.32.3",
      "attacker": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Safari/537.36"}
CHANNEL = {"ios": "app", "android": "app", "desktop": "web", "api": "api", "attacker": "web"}
PRICES = {"BTC": 95_000.0, "ETH": 3_300.0, "SOL": 180.0, "XRP": 2.4, "USDT": 1.0, "USDC": 1.0}
NETWORK = {"BTC": "BTC", "ETH": "ETH", "SOL": "SOL", "XRP": "XRP", "USDT": "TRX", "USDC": "ETH"}
PREFIX = {"logins": "lg", "transactions": "tx", "positions": "ps", "security_events": "se"}

