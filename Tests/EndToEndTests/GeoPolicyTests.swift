// scripts/geo_policy.lua behind a real HAProxy with the shipped
// haproxy/haproxy-geo-policy.cfg: the client address (X-Forwarded-For from the
// local balancer) is looked up in the demo .mmdb files; a denied country is a
// 403 with the map's reason, others reach the application with their tags.

import Foundation
import XCTest

final class GeoPolicyTests: E2ETestCase {
    func testCountriesAreDeniedOrTagged() throws {
        try checkCountries(haproxy: requireHAProxy())
    }

    /// The same configuration through HAProxy 3.x (its "mode tcp" agents backend is converted on 3.1+).
    func testCountriesAreDeniedOrTaggedThroughHAProxy3() throws {
        try forEachHAProxy3 { t in try checkCountries(haproxy: t.command) }
    }

    func checkCountries(haproxy binary: String) throws {
        let (agent, agentPort) = try startAgent(
            scriptPath: E2EPaths.repoFile("scripts/geo_policy.lua").path, name: "geo", extraArgs: ["--var-prefix", "geo"])
        let setup = try ProxySetup(agent: agentPort), web = setup.web
        let cfg = try setup.shipped("haproxy/haproxy-geo-policy.cfg")
        let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-geo-policy.conf"), encoding: .utf8)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-geo-policy.conf": spoe], waitPort: web, binary: binary)
        let logs = { "\n\(haproxy.logTail())\n\(agent.logTail())" }

        let denied = try httpGet(port: web, headers: [("X-Forwarded-For", "10.9.8.7, 198.51.100.7")])
        XCTAssertEqual(denied.status, 403, "\(denied.headers)\(logs())")
        XCTAssertEqual(denied.header("X-Geo-Country"), "KP")
        XCTAssertEqual(denied.header("X-Geo-Reason"), "sanctions")

        let france = try httpGet(port: web, headers: [("X-Forwarded-For", "192.0.2.10")])
        XCTAssertEqual(france.status, 200, "\(france.headers)\(logs())")
        XCTAssertEqual(String(decoding: france.body, as: UTF8.self), "hello cc=FR,asn=64496,org=Example Transit\n")

        let germany = try httpGet(port: web, headers: [("X-Forwarded-For", "2001:db8::7")])
        XCTAssertEqual(germany.status, 200, "\(germany.headers)\(logs())")
        XCTAssertEqual(germany.header("X-Geo-Country"), "DE")

        let local = try httpGet(port: web)
        XCTAssertEqual(local.status, 200, "\(local.headers)\(logs())")
        XCTAssertEqual(local.header("X-Geo-Country"), "--")
        XCTAssertNil(local.header("X-SPOE-Error"))
        XCTAssertFalse(agent.logTail().contains("error"), agent.logTail())
    }
}
