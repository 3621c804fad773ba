#!/usr/bin/env python3
"""Writes test.mmdb, the small MaxMind DB that geoip_spec.lua reads, and
test-v2.mmdb, the same with 192.0.2.0/24 moved to BE (GeoIPTests: a file
replaced on disk is picked up by the next load, as after a geoipupdate), and
scripts/geo_policy-country.mmdb and -asn.mmdb, the example's demo data.

Reproducible (no timestamps in the data; build_epoch is fixed below), made
with the PyPI packages mmdb-writer and netaddr:

    pip install --target /tmp/mmdb-py mmdb-writer netaddr
    PYTHONPATH=/tmp/mmdb-py python3 Tests/LuaSpecs/geoip/make-test-mmdb.py
"""
import os
import time

from mmdb_writer import MMDBWriter
from netaddr import IPSet

HERE = os.path.dirname(os.path.abspath(__file__))

def write(name, first_country):
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="luaspoa-test-geo",
                        languages=["en"], description={"en": "luaspoa spoa.geoip test data"})
    writer.insert_network(IPSet(["192.0.2.0/24"]), {
        "country": {"iso_code": first_country[0], "names": {"en": first_country[1], "de": first_country[2]}},
        "asn": 64496, "as_org": "Example Transit", "tags": ["hosting", "eu"], "anycast": False,
    })
    writer.insert_network(IPSet(["198.51.100.0/25"]), {
        "country": {"iso_code": "JP", "names": {"en": "Japan"}},
        "asn": 64511, "as_org": "Example Cloud", "tags": [], "anycast": True, "score": 0.5,
    })
    writer.insert_network(IPSet(["2001:db8:1::/48"]), {
        "country": {"iso_code": "DE", "names": {"en": "Germany"}},
        "asn": 4200000000,
    })
    writer.to_db_file(os.path.join(HERE, name))


def write_policy_demo():
    """scripts/geo_policy-{country,asn}.mmdb: GeoLite2 layouts over documentation ranges."""
    scripts = os.path.join(HERE, "..", "..", "..", "scripts")
    country = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country",
                         languages=["en"], description={"en": "luaspoa geo_policy.lua demo data (documentation ranges)"})
    for net, code, name in [("192.0.2.0/24", "FR", "France"), ("198.51.100.0/24", "KP", "North Korea"),
                            ("203.0.113.0/24", "JP", "Japan"), ("2001:db8::/32", "DE", "Germany")]:
        country.insert_network(IPSet([net]), {"country": {"iso_code": code, "names": {"en": name}}})
    country.to_db_file(os.path.join(scripts, "geo_policy-country.mmdb"))
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN",
                     languages=["en"], description={"en": "luaspoa geo_policy.lua demo data (documentation ranges)"})
    for net, number, org in [("192.0.2.0/24", 64496, "Example Transit"), ("203.0.113.0/24", 64511, "Example Hosting")]:
        asn.insert_network(IPSet([net]), {"autonomous_system_number": number, "autonomous_system_organization": org})
    asn.to_db_file(os.path.join(scripts, "geo_policy-asn.mmdb"))


real_time = time.time
time.time = lambda: 1700000000  # build_epoch: the same bytes on every run
try:
    write("test.mmdb", ("FR", "France", "Frankreich"))
    write("test-v2.mmdb", ("BE", "Belgium", "Belgien"))
    write_policy_demo()
finally:
    time.time = real_time
