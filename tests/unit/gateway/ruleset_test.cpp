// Golden tests of the generated ruleset and of the install/remove plans
// (gateway/rules/ruleset.hpp). Expected texts are written out in full: a changed rule must show up
// here as a diff.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/packet/prefilter.hpp"
#include "gateway/rules/ruleset.hpp"

namespace {

using acmegw::gateway::Config;
using acmegw::gateway::Endpoint;
using acmegw::packet::Family;
using namespace acmegw::rules;

// Stand-ins for the xt_bpf programs so the expectations stay readable; the real programs are
// plugged in by default_programs() (checked at the end).
const BpfPrograms kFake{"1,6 0 0 1", "1,6 0 0 0", "1,6 0 0 2"};

Endpoint endpoint(std::string_view text) {
  std::string error;
  const auto e = acmegw::gateway::parse_endpoint(text, error);
  REQUIRE(e.has_value());
  return *e;
}

Config config(std::initializer_list<std::string_view> endpoints) {
  Config cfg;
  for (const auto e : endpoints) {
    cfg.protect.push_back(endpoint(e));
  }
  REQUIRE(acmegw::gateway::validate(cfg).empty());
  return cfg;
}

std::vector<std::string> texts(const std::vector<PlanLine>& plan) {
  std::vector<std::string> out;
  for (const auto& l : plan) {
    out.push_back(l.text);
  }
  return out;
}

}  // namespace

TEST_CASE("ruleset: IPv4 with defaults, http + tls endpoints, one queue", "[rules]") {
  const Config cfg = config({"203.0.113.10", "tls://198.51.100.0/24:8443", "[2001:db8::1]:80"});
  const std::string expected =
      "*mangle\n"
      ":ACMEGW-PRE - [0:0]\n"
      ":ACMEGW-FLOW - [0:0]\n"
      ":ACMEGW-HTTP - [0:0]\n"
      ":ACMEGW-TLS - [0:0]\n"
      ":ACMEGW-IN - [0:0]\n"
      "-A PREROUTING -d 203.0.113.10/32 -j ACMEGW-PRE\n"
      "-A PREROUTING -d 198.51.100.0/24 -j ACMEGW-PRE\n"
      "-A INPUT -j ACMEGW-IN\n"
      "-A ACMEGW-PRE -d 203.0.113.10/32 -m tos --tos 0x0c/0x1c -j TOS --set-tos 0x00/0x1c\n"
      "-A ACMEGW-PRE -d 198.51.100.0/24 -m tos --tos 0x0c/0x1c -j TOS --set-tos 0x00/0x1c\n"
      "-A ACMEGW-PRE -d 203.0.113.10/32 -p tcp -m tcp --dport 80 -g ACMEGW-FLOW\n"
      "-A ACMEGW-PRE -d 198.51.100.0/24 -p tcp -m tcp --dport 8443 -g ACMEGW-FLOW\n"
      "-A ACMEGW-FLOW -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m connmark --mark "
      "0x100000/0xf00000 -j RETURN\n"
      "-A ACMEGW-FLOW -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connmark ! --mark "
      "0x0/0xf00000 -m conntrack --ctdir ORIGINAL -m comment --comment \"acmegw: new "
      "connection on a decided tuple\" -j CONNMARK --set-xmark 0x0/0xf00000\n"
      "-A ACMEGW-FLOW -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j RETURN\n"
      "-A ACMEGW-FLOW -m mark --mark 0x100000/0xf00000 -m comment --comment \"acmegw: save "
      "production verdict\" -j CONNMARK --save-mark --nfmask 0xf00000 --ctmask 0xf00000\n"
      "-A ACMEGW-FLOW -m mark --mark 0x100000/0xf00000 -m comment --comment \"acmegw: "
      "production verdict saved\" -j RETURN\n"
      "-A ACMEGW-FLOW -m mark --mark 0x200000/0xf00000 -m comment --comment \"acmegw: save "
      "takeover verdict\" -j CONNMARK --save-mark --nfmask 0xf00000 --ctmask 0xf00000\n"
      "-A ACMEGW-FLOW -m connmark ! --mark 0x0/0xf00000 -m comment --comment \"acmegw: "
      "restore flow decision\" -j CONNMARK --restore-mark --nfmask 0xf00000 --ctmask "
      "0xf00000\n"
      "-A ACMEGW-FLOW -m mark --mark 0x200000/0xf00000 -m conntrack --ctdir REPLY -m comment "
      "--comment \"acmegw: drop production side of taken flow\" -j DROP\n"
      "-A ACMEGW-FLOW -m mark --mark 0x200000/0xf00000 -m comment --comment \"acmegw: taken "
      "flow, local route TOS\" -j TOS --set-tos 0x0c/0x1c\n"
      "-A ACMEGW-FLOW -m mark --mark 0x200000/0xf00000 -m comment --comment \"acmegw: taken "
      "flow, routed to local\" -j ACCEPT\n"
      "-A ACMEGW-FLOW -d 203.0.113.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate "
      "ESTABLISHED --ctdir ORIGINAL -m comment --comment \"acmegw: protected http endpoint\" "
      "-j ACMEGW-HTTP\n"
      "-A ACMEGW-FLOW -d 198.51.100.0/24 -p tcp -m tcp --dport 8443 -m conntrack --ctstate "
      "ESTABLISHED --ctdir ORIGINAL -m comment --comment \"acmegw: protected tls endpoint\" "
      "-j ACMEGW-TLS\n"
      "-A ACMEGW-HTTP -m mark --mark 0x0/0xf00000 -m bpf --bytecode \"1,6 0 0 0\" -m comment "
      "--comment \"acmegw: prefilter, not a challenge\" -j MARK --set-xmark "
      "0x100000/0xf00000\n"
      "-A ACMEGW-HTTP -m mark --mark 0x100000/0xf00000 -m comment --comment \"acmegw: save "
      "prefilter verdict\" -j CONNMARK --save-mark --nfmask 0xf00000 --ctmask 0xf00000\n"
      "-A ACMEGW-HTTP -m mark --mark 0x100000/0xf00000 -m comment --comment \"acmegw: "
      "prefilter passed, fast path\" -j RETURN\n"
      "-A ACMEGW-HTTP -m bpf --bytecode \"1,6 0 0 1\" -m comment --comment \"acmegw: queue "
      "http data of undecided flow\" -j NFQUEUE --queue-num 0 --queue-bypass\n"
      "-A ACMEGW-HTTP -p tcp -m mark --mark 0x300000/0xf00000 -m tcp ! --tcp-flags FIN,RST "
      "NONE -m comment --comment \"acmegw: queue end of held http flow\" -j NFQUEUE "
      "--queue-num 0 --queue-bypass\n"
      "-A ACMEGW-TLS -m mark --mark 0x0/0xf00000 -m bpf --bytecode \"1,6 0 0 2\" -m string ! "
      "--string \"acme-tls/1\" --algo bm -m comment --comment \"acmegw: prefilter, not a "
      "challenge\" -j MARK --set-xmark 0x100000/0xf00000\n"
      "-A ACMEGW-TLS -m mark --mark 0x100000/0xf00000 -m comment --comment \"acmegw: save "
      "prefilter verdict\" -j CONNMARK --save-mark --nfmask 0xf00000 --ctmask 0xf00000\n"
      "-A ACMEGW-TLS -m mark --mark 0x100000/0xf00000 -m comment --comment \"acmegw: "
      "prefilter passed, fast path\" -j RETURN\n"
      "-A ACMEGW-TLS -m bpf --bytecode \"1,6 0 0 1\" -m comment --comment \"acmegw: queue "
      "tls data of undecided flow\" -j NFQUEUE --queue-num 0 --queue-bypass\n"
      "-A ACMEGW-TLS -p tcp -m mark --mark 0x300000/0xf00000 -m tcp ! --tcp-flags FIN,RST "
      "NONE -m comment --comment \"acmegw: queue end of held tls flow\" -j NFQUEUE "
      "--queue-num 0 --queue-bypass\n"
      "-A ACMEGW-IN -m mark ! --mark 0x200000/0xf00000 -m tos --tos 0x0c/0x1c -m addrtype ! "
      "--dst-type LOCAL -m comment --comment \"acmegw: not taken, yet delivered by a takeover "
      "route\" -j DROP\n"
      "COMMIT\n"
      "*raw\n"
      ":ACMEGW-OUT - [0:0]\n"
      "-A OUTPUT -j ACMEGW-OUT\n"
      "-A ACMEGW-OUT -m mark --mark 0x400000/0xf00000 -m comment --comment \"acmegw: "
      "untracked reset to production\" -j CT --notrack\n"
      "COMMIT\n";
  CHECK(render_save(build_ruleset(cfg, Family::V4, kFake)) == expected);
}

TEST_CASE("ruleset: IPv6, custom masks, queue balance, prefix, no prefilter", "[rules]") {
  Config cfg = config({"[2001:db8::/64]:8080", "192.0.2.1"});
  cfg.marks = {0x0000ff00, 0x00000100, 0x00000200, 0x00000300, 0x00000400};
  cfg.queue.first = 4;
  cfg.queue.count = 3;
  cfg.chain_prefix = "AGW";
  cfg.prefilter = false;
  REQUIRE(acmegw::gateway::validate(cfg).empty());
  const std::string expected =
      "*mangle\n"
      ":AGW-PRE - [0:0]\n"
      ":AGW-FLOW - [0:0]\n"
      ":AGW-HTTP - [0:0]\n"
      "-A PREROUTING -d 2001:db8::/64 -j AGW-PRE\n"
      "-A AGW-PRE -d 2001:db8::/64 -p tcp -m tcp --dport 8080 -g AGW-FLOW\n"
      "-A AGW-FLOW -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m connmark --mark "
      "0x100/0xff00 -j RETURN\n"
      "-A AGW-FLOW -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connmark ! --mark "
      "0x0/0xff00 -m conntrack --ctdir ORIGINAL -m comment --comment \"acmegw: new "
      "connection on a decided tuple\" -j CONNMARK --set-xmark 0x0/0xff00\n"
      "-A AGW-FLOW -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j RETURN\n"
      "-A AGW-FLOW -m mark --mark 0x100/0xff00 -m comment --comment \"acmegw: save "
      "production verdict\" -j CONNMARK --save-mark --nfmask 0xff00 --ctmask 0xff00\n"
      "-A AGW-FLOW -m mark --mark 0x100/0xff00 -m comment --comment \"acmegw: production "
      "verdict saved\" -j RETURN\n"
      "-A AGW-FLOW -m mark --mark 0x200/0xff00 -m comment --comment \"acmegw: save takeover "
      "verdict\" -j CONNMARK --save-mark --nfmask 0xff00 --ctmask 0xff00\n"
      "-A AGW-FLOW -m connmark ! --mark 0x0/0xff00 -m comment --comment \"acmegw: restore "
      "flow decision\" -j CONNMARK --restore-mark --nfmask 0xff00 --ctmask 0xff00\n"
      "-A AGW-FLOW -m mark --mark 0x200/0xff00 -m conntrack --ctdir REPLY -m comment "
      "--comment \"acmegw: drop production side of taken flow\" -j DROP\n"
      "-A AGW-FLOW -m mark --mark 0x200/0xff00 -m comment --comment \"acmegw: taken flow, "
      "routed to local\" -j ACCEPT\n"
      "-A AGW-FLOW -d 2001:db8::/64 -p tcp -m tcp --dport 8080 -m conntrack --ctstate "
      "ESTABLISHED --ctdir ORIGINAL -m comment --comment \"acmegw: protected http endpoint\" "
      "-j AGW-HTTP\n"
      "-A AGW-HTTP -m bpf --bytecode \"1,6 0 0 1\" -m comment --comment \"acmegw: queue http "
      "data of undecided flow\" -j NFQUEUE --queue-balance 4:6 --queue-bypass\n"
      "-A AGW-HTTP -p tcp -m mark --mark 0x300/0xff00 -m tcp ! --tcp-flags FIN,RST NONE -m "
      "comment --comment \"acmegw: queue end of held http flow\" -j NFQUEUE --queue-balance "
      "4:6 --queue-bypass\n"
      "COMMIT\n"
      "*raw\n"
      ":AGW-OUT - [0:0]\n"
      "-A OUTPUT -j AGW-OUT\n"
      "-A AGW-OUT -m mark --mark 0x400/0xff00 -m comment --comment \"acmegw: untracked reset "
      "to production\" -j CT --notrack\n"
      "COMMIT\n";
  CHECK(render_save(build_ruleset(cfg, Family::V6, kFake)) == expected);
}

TEST_CASE("ruleset: a family without endpoints has no rules", "[rules]") {
  const Config cfg = config({"192.0.2.1"});
  CHECK_FALSE(has_family(cfg, Family::V6));
  CHECK(build_ruleset(cfg, Family::V6, kFake).chains.empty());
  CHECK(render_save(build_ruleset(cfg, Family::V6, kFake)).empty());
}

TEST_CASE("plan_install: fresh system inserts jumps first and declares every chain", "[rules]") {
  const Config cfg = config({"192.0.2.1"});
  const auto rs = build_ruleset(cfg, Family::V4, kFake);
  const auto lines = texts(plan_install(rs, "ACMEGW", ""));
  // mangle: header, 4 declarations, 2 jumps, 2 PRE + 11 FLOW + 5 HTTP + 1 IN rules, COMMIT;
  // raw: 5; no filter table (policy pass has no FORWARD rule).
  REQUIRE(lines.size() == 27 + 5);
  CHECK(lines[0] == "*mangle");
  CHECK(lines[1] == ":ACMEGW-PRE - [0:0]");
  CHECK(lines[2] == ":ACMEGW-FLOW - [0:0]");
  CHECK(lines[3] == ":ACMEGW-HTTP - [0:0]");
  CHECK(lines[4] == ":ACMEGW-IN - [0:0]");
  CHECK(lines[5] == "-I PREROUTING 1 -d 192.0.2.1/32 -j ACMEGW-PRE");
  CHECK(lines[6] == "-I INPUT 1 -j ACMEGW-IN");
  CHECK(lines[7] ==
        "-A ACMEGW-PRE -d 192.0.2.1/32 -m tos --tos 0x0c/0x1c -j TOS --set-tos 0x00/0x1c");
  CHECK(lines[8] == "-A ACMEGW-PRE -d 192.0.2.1/32 -p tcp -m tcp --dport 80 -g ACMEGW-FLOW");
  CHECK(lines[9] ==
        "-A ACMEGW-FLOW -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m connmark --mark "
        "0x100000/0xf00000 -j RETURN");
  CHECK(lines[24].find("queue end of held http flow") != std::string::npos);
  CHECK(lines[25].starts_with("-A ACMEGW-IN -m mark ! --mark 0x200000/0xf00000 -m tos"));
  CHECK(lines[26] == "COMMIT");
  CHECK(lines[27] == "*raw");
  CHECK(lines[28] == ":ACMEGW-OUT - [0:0]");
  CHECK(lines[29] == "-I OUTPUT 1 -j ACMEGW-OUT");
  CHECK(lines[31] == "COMMIT");
  CHECK(lines.back() == "COMMIT");
}

TEST_CASE("plan_install: current jumps are kept, legacy jumps replaced, stale chains removed",
          "[rules]") {
  // Installed by an older acmegw (jump with a comment) with an http endpoint; now only a TLS
  // endpoint: PFX-HTTP is stale and the PREROUTING jump is replaced by the comment-less form.
  const std::string current =
      "# Generated by iptables-save v1.8.9 (nf_tables)\n"
      "*mangle\n"
      ":PREROUTING ACCEPT [0:0]\n"
      ":ACMEGW-HTTP - [0:0]\n"
      ":ACMEGW-PRE - [0:0]\n"
      "-A PREROUTING -m comment --comment acmegw -j ACMEGW-PRE\n"
      "-A PREROUTING -p udp -m udp --dport 53 -j MARK --set-xmark 0x1/0xff\n"
      "-A ACMEGW-PRE -d 192.0.2.1/32 -j ACMEGW-HTTP\n"
      "COMMIT\n"
      "*raw\n"
      ":OUTPUT ACCEPT [0:0]\n"
      ":ACMEGW-OUT - [0:0]\n"
      "-A OUTPUT -j ACMEGW-OUT\n"
      "COMMIT\n";
  const Config cfg = config({"tls://192.0.2.1:443"});
  const auto lines = texts(plan_install(build_ruleset(cfg, Family::V4, kFake), "ACMEGW", current));
  REQUIRE(lines.size() == 30 + 4);
  CHECK(lines[0] == "*mangle");
  CHECK(lines[1] == ":ACMEGW-PRE - [0:0]");  // flushes PRE, which drops its jump to HTTP
  CHECK(lines[2] == ":ACMEGW-FLOW - [0:0]");
  CHECK(lines[3] == ":ACMEGW-TLS - [0:0]");
  CHECK(lines[4] == ":ACMEGW-IN - [0:0]");
  CHECK(lines[5] == "-D PREROUTING -m comment --comment acmegw -j ACMEGW-PRE");
  CHECK(lines[6] == "-I PREROUTING 1 -d 192.0.2.1/32 -j ACMEGW-PRE");
  CHECK(lines[7] == "-I INPUT 1 -j ACMEGW-IN");
  CHECK(lines[9] == "-A ACMEGW-PRE -d 192.0.2.1/32 -p tcp -m tcp --dport 443 -g ACMEGW-FLOW");
  CHECK(lines[20].find("--dport 443") != std::string::npos);
  CHECK(lines[20].ends_with("-j ACMEGW-TLS"));
  CHECK(lines[21].find("--string \"acme-tls/1\"") != std::string::npos);
  CHECK(lines[24].find("-j NFQUEUE") != std::string::npos);
  CHECK(lines[25].find("queue end of held tls flow") != std::string::npos);
  CHECK(lines[26].starts_with("-A ACMEGW-IN "));
  CHECK(lines[27] == "-F ACMEGW-HTTP");
  CHECK(lines[28] == "-X ACMEGW-HTTP");
  CHECK(lines[29] == "COMMIT");
  CHECK(lines[30] == "*raw");
  CHECK(lines[31] == ":ACMEGW-OUT - [0:0]");
  CHECK(lines[32].starts_with("-A ACMEGW-OUT "));  // no -I: the jump exists
  CHECK(lines.back() == "COMMIT");
}

TEST_CASE("plan_install: the FORWARD chain of an older acmegw is unhooked and deleted", "[rules]") {
  // Before 2026-12 every ruleset had PFX-FWD (connmark TAKEN → DROP on every forwarded packet).
  const std::string current =
      "*filter\n"
      ":FORWARD DROP [0:0]\n"
      ":ACMEGW-FWD - [0:0]\n"
      "-A FORWARD -j ACMEGW-FWD\n"
      "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
      "-A ACMEGW-FWD -m connmark --mark 0x200000/0xf00000 -m comment --comment \"acmegw: taken "
      "flow, never forwarded\" -j DROP\n"
      "COMMIT\n";
  const Config cfg = config({"192.0.2.1"});
  const auto lines = texts(plan_install(build_ruleset(cfg, Family::V4, kFake), "ACMEGW", current));
  const std::vector<std::string> filter(lines.end() - 5, lines.end());
  CHECK(filter == std::vector<std::string>{"*filter", "-D FORWARD -j ACMEGW-FWD", "-F ACMEGW-FWD",
                                           "-X ACMEGW-FWD", "COMMIT"});
}

TEST_CASE("plan_remove: deletes every jump (also duplicates), flushes, then deletes", "[rules]") {
  const std::string current =
      "*mangle\n"
      ":PREROUTING ACCEPT [5:300]\n"
      ":ACMEGW-FLOW - [0:0]\n"
      ":ACMEGW-HTTP - [0:0]\n"
      ":ACMEGW-PRE - [0:0]\n"
      ":OTHER-PRE - [0:0]\n"
      "[3:180] -A PREROUTING -m comment --comment acmegw -j ACMEGW-PRE\n"
      "[0:0] -A PREROUTING -m comment --comment acmegw -j ACMEGW-PRE\n"
      "[9:540] -A PREROUTING -j ACMEGW-PRE\n"
      "[2:120] -A PREROUTING -d 192.0.2.1/32 -j ACMEGW-PRE\n"
      "[0:0] -A PREROUTING -p udp -j OTHER-PRE\n"
      "[0:0] -A PREROUTING -d 192.0.2.9/32 -p tcp -j OTHER-PRE\n"
      "[0:0] -A ACMEGW-PRE -d 192.0.2.1/32 -g ACMEGW-FLOW\n"
      "[0:0] -A ACMEGW-FLOW -d 192.0.2.1/32 -j ACMEGW-HTTP\n"
      "COMMIT\n"
      "*filter\n"
      ":FORWARD ACCEPT [0:0]\n"
      ":ACMEGW-FWD - [0:0]\n"
      "-A FORWARD -j ACMEGW-FWD\n"
      "COMMIT\n";
  const std::vector<std::string> expected = {
      "*mangle",
      "-D PREROUTING -m comment --comment acmegw -j ACMEGW-PRE",
      "-D PREROUTING -m comment --comment acmegw -j ACMEGW-PRE",
      "-D PREROUTING -j ACMEGW-PRE",
      "-D PREROUTING -d 192.0.2.1/32 -j ACMEGW-PRE",
      "-F ACMEGW-PRE",
      "-F ACMEGW-FLOW",
      "-F ACMEGW-HTTP",
      "-X ACMEGW-PRE",
      "-X ACMEGW-FLOW",
      "-X ACMEGW-HTTP",
      "COMMIT",
      "*filter",
      "-D FORWARD -j ACMEGW-FWD",
      "-F ACMEGW-FWD",
      "-X ACMEGW-FWD",
      "COMMIT",
  };
  CHECK(texts(plan_remove("ACMEGW", current)) == expected);
  CHECK(plan_remove("ACMEGW", "*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n").empty());
  CHECK(plan_remove("ACMEGW", "").empty());
  // OTHER-PRE's jump is not one install writes (it has a match): it is left alone, so the -X
  // fails loudly in iptables-restore instead of deleting somebody else's rule.
  CHECK(texts(plan_remove("OTHER", current)) ==
        std::vector<std::string>{"*mangle", "-F OTHER-PRE", "-X OTHER-PRE", "COMMIT"});
}

TEST_CASE("explain_restore_error: maps the failing input line to the modules it needs", "[rules]") {
  const Config cfg = config({"192.0.2.1"});
  const auto plan = plan_install(build_ruleset(cfg, Family::V4, kFake), "ACMEGW", "");
  // Line 21 is the prefilter rule (header, 4 declarations, 2 jumps, 2 PRE + 11 FLOW rules, then
  // HTTP).
  REQUIRE(plan[20].text.find("prefilter, not a challenge") != std::string::npos);
  const std::string nft =
      "iptables-restore v1.8.9 (nf_tables): \nline 21: RULE_APPEND failed (No such file or "
      "directory): rule in chain ACMEGW-HTTP\n";
  const std::string why = explain_restore_error(plan, nft);
  CHECK(why.starts_with("rule `-A ACMEGW-HTTP -m mark --mark 0x0/0xf00000 -m bpf"));
  CHECK(
      why.find("(input line 21) was rejected; it needs: xt_bpf (CONFIG_NETFILTER_XT_MATCH_BPF)") !=
      std::string::npos);
  CHECK(explain_restore_error(plan, "Couldn't load match `bpf'\n\nError occurred at line: 21\n") ==
        why);
  CHECK(explain_restore_error(plan, "iptables-restore: line 21 failed\n") == why);
  CHECK(explain_restore_error(plan, "Error occurred at line: 27\n")
            .starts_with("the kernel rejected the table committed at input line 27"));
  CHECK(explain_restore_error(plan, "line 8: x").find("it needs: xt_dscp") != std::string::npos);
  CHECK(explain_restore_error(plan, "no line number here").empty());
  CHECK(explain_restore_error(plan, "line 999: out of range").empty());
  CHECK(explain_restore_error(plan, "line 0: nonsense").empty());
}

TEST_CASE("route_commands: exact ip argv per family", "[rules]") {
  Config cfg = config({"192.0.2.1", "tls://192.0.2.1", "198.51.100.0/24:8080", "[2001:db8::1]"});
  cfg.routing.tos = 0x14;
  cfg.routing.table = 77;
  cfg.routing.priority = 1234;
  REQUIRE(acmegw::gateway::validate(cfg).empty());
  const auto v4 = route_commands(cfg, Family::V4);
  // One TOS route per distinct network, in table local (before any ip rule), no rule at all.
  REQUIRE(v4.tos_route_add.size() == 2);
  CHECK(join_argv(v4.tos_route_add[0]) ==
        "ip -4 route add local 192.0.2.1/32 tos 0x14 proto 172 dev lo table local");
  CHECK(join_argv(v4.tos_route_add[1]) ==
        "ip -4 route add local 198.51.100.0/24 tos 0x14 proto 172 dev lo table local");
  CHECK(join_argv(v4.tos_route_flush) == "ip -4 route flush table local proto 172");
  // The IPv4 rule of acmegw before 2026-12, only ever removed.
  CHECK(join_argv(v4.rule_del) == "ip -4 rule del pref 1234 fwmark 0x200000/0xf00000 lookup 77");
  CHECK(join_argv(v4.route_del) == "ip -4 route del local 0.0.0.0/0 dev lo table 77");
  const auto v6 = route_commands(cfg, Family::V6);
  CHECK(v6.tos_route_add.empty());
  CHECK(join_argv(v6.route_add) == "ip -6 route add local ::/0 dev lo table 77");
  CHECK(join_argv(v6.route_show) == "ip -6 route show table 77 type local exact ::/0 dev lo");
  CHECK(join_argv(v6.rule_add) == "ip -6 rule add pref 1234 fwmark 0x200000/0xf00000 lookup 77");
  CHECK(join_argv(v6.rule_show) == "ip -6 rule show pref 1234 fwmark 0x200000/0xf00000 lookup 77");
}

TEST_CASE("default_programs: the packet library's programs for the default challenge", "[rules]") {
  for (const Family f : {Family::V4, Family::V6}) {
    const BpfPrograms p = default_programs(f);
    CHECK(p.payload_probe ==
          acmegw::packet::to_xt_bytecode(acmegw::packet::build_payload_probe(f)));
    CHECK(p.prefilter == acmegw::packet::to_xt_bytecode(acmegw::packet::build_prefilter(f)));
    CHECK(p.tls_prefilter ==
          acmegw::packet::to_xt_bytecode(acmegw::packet::build_tls_prefilter(f)));
  }
}

TEST_CASE("ruleset: policy drop adds the DROP save and drop rules, nothing else changes",
          "[rules]") {
  Config cfg = config({"203.0.113.10"});
  const std::string pass_v4 = render_save(build_ruleset(cfg, Family::V4, kFake));
  cfg.backend = acmegw::gateway::BackendSpec{acmegw::gateway::BackendKind::Thumbprint, "x"};
  cfg.prefilter = false;
  for (const auto p : {acmegw::gateway::Policy::RedirectHttps, acmegw::gateway::Policy::Reject}) {
    cfg.policy = p;
    REQUIRE(acmegw::gateway::validate(cfg).empty());
    Config no_policy = cfg;
    no_policy.policy = acmegw::gateway::Policy::Pass;
    CHECK(render_save(build_ruleset(cfg, Family::V4, kFake)) ==
          render_save(build_ruleset(no_policy, Family::V4, kFake)));
  }
  cfg.policy = acmegw::gateway::Policy::Drop;
  REQUIRE(acmegw::gateway::validate(cfg).empty());
  const std::string expected =
      "*mangle\n"
      ":ACMEGW-PRE - [0:0]\n"
      ":ACMEGW-FLOW - [0:0]\n"
      ":ACMEGW-HTTP - [0:0]\n"
      ":ACMEGW-IN - [0:0]\n"
      "-A PREROUTING -d 203.0.113.10/32 -j ACMEGW-PRE\n"
      "-A INPUT -j ACMEGW-IN\n"
      "-A ACMEGW-PRE -d 203.0.113.10/32 -m tos --tos 0x0c/0x1c -j TOS --set-tos 0x00/0x1c\n"
      "-A ACMEGW-PRE -d 203.0.113.10/32 -p tcp -m tcp --dport 80 -g ACMEGW-FLOW\n"
      "-A ACMEGW-FLOW -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m connmark --mark "
      "0x100000/0xf00000 -j RETURN\n"
      "-A ACMEGW-FLOW -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connmark ! --mark "
      "0x0/0xf00000 -m conntrack --ctdir ORIGINAL -m comment --comment \"acmegw: new "
      "connection on a decided tuple\" -j CONNMARK --set-xmark 0x0/0xf00000\n"
      "-A ACMEGW-FLOW -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j RETURN\n"
      "-A ACMEGW-FLOW -m mark --mark 0x100000/0xf00000 -m comment --comment \"acmegw: save "
      "production verdict\" -j CONNMARK --save-mark --nfmask 0xf00000 --ctmask 0xf00000\n"
      "-A ACMEGW-FLOW -m mark --mark 0x100000/0xf00000 -m comment --comment \"acmegw: "
      "production verdict saved\" -j RETURN\n"
      "-A ACMEGW-FLOW -m mark --mark 0x200000/0xf00000 -m comment --comment \"acmegw: save "
      "takeover verdict\" -j CONNMARK --save-mark --nfmask 0xf00000 --ctmask 0xf00000\n"
      // the DROP verdict mark, saved with the other verdicts, then the drop itself: after the
      // SYN rule (a new connection on the tuple is not dropped) and after the production fast
      // path (production packets never meet it)
      "-A ACMEGW-FLOW -m mark --mark 0x500000/0xf00000 -m comment --comment \"acmegw: save "
      "drop verdict\" -j CONNMARK --save-mark --nfmask 0xf00000 --ctmask 0xf00000\n"
      "-A ACMEGW-FLOW -m connmark --mark 0x500000/0xf00000 -m comment --comment \"acmegw: "
      "dropped flow (policy drop)\" -j DROP\n"
      "-A ACMEGW-FLOW -m connmark ! --mark 0x0/0xf00000 -m comment --comment \"acmegw: "
      "restore flow decision\" -j CONNMARK --restore-mark --nfmask 0xf00000 --ctmask "
      "0xf00000\n"
      "-A ACMEGW-FLOW -m mark --mark 0x200000/0xf00000 -m conntrack --ctdir REPLY -m comment "
      "--comment \"acmegw: drop production side of taken flow\" -j DROP\n"
      "-A ACMEGW-FLOW -m mark --mark 0x200000/0xf00000 -m comment --comment \"acmegw: taken "
      "flow, local route TOS\" -j TOS --set-tos 0x0c/0x1c\n"
      "-A ACMEGW-FLOW -m mark --mark 0x200000/0xf00000 -m comment --comment \"acmegw: taken "
      "flow, routed to local\" -j ACCEPT\n"
      "-A ACMEGW-FLOW -d 203.0.113.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate "
      "ESTABLISHED --ctdir ORIGINAL -m comment --comment \"acmegw: protected http endpoint\" "
      "-j ACMEGW-HTTP\n"
      "-A ACMEGW-HTTP -m bpf --bytecode \"1,6 0 0 1\" -m comment --comment \"acmegw: queue "
      "http data of undecided flow\" -j NFQUEUE --queue-num 0 --queue-bypass\n"
      "-A ACMEGW-HTTP -p tcp -m mark --mark 0x300000/0xf00000 -m tcp ! --tcp-flags FIN,RST "
      "NONE -m comment --comment \"acmegw: queue end of held http flow\" -j NFQUEUE "
      "--queue-num 0 --queue-bypass\n"
      "-A ACMEGW-IN -m mark ! --mark 0x200000/0xf00000 -m tos --tos 0x0c/0x1c -m addrtype ! "
      "--dst-type LOCAL -m comment --comment \"acmegw: not taken, yet delivered by a takeover "
      "route\" -j DROP\n"
      "COMMIT\n"
      "*raw\n"
      ":ACMEGW-OUT - [0:0]\n"
      "-A OUTPUT -j ACMEGW-OUT\n"
      "-A ACMEGW-OUT -m mark --mark 0x400000/0xf00000 -m comment --comment \"acmegw: "
      "untracked reset to production\" -j CT --notrack\n"
      "COMMIT\n"
      "*filter\n"
      ":ACMEGW-FWD - [0:0]\n"
      "-A FORWARD -j ACMEGW-FWD\n"
      "-A ACMEGW-FWD -m connmark --mark 0x500000/0xf00000 -m comment --comment \"acmegw: "
      "dropped flow, never forwarded\" -j DROP\n"
      "COMMIT\n";
  CHECK(render_save(build_ruleset(cfg, Family::V4, kFake)) == expected);
  // A custom DROP mark and mask, and the IPv6 half (no v6 endpoint: still empty).
  cfg.marks = {0xf0, 0x10, 0x20, 0x30, 0x40, 0x70};
  REQUIRE(acmegw::gateway::validate(cfg).empty());
  const std::string custom = render_save(build_ruleset(cfg, Family::V4, kFake));
  CHECK(custom.find("-A ACMEGW-FLOW -m mark --mark 0x70/0xf0 -m comment --comment \"acmegw: save "
                    "drop verdict\" -j CONNMARK --save-mark --nfmask 0xf0 --ctmask 0xf0\n") !=
        std::string::npos);
  CHECK(custom.find("-A ACMEGW-FWD -m connmark --mark 0x70/0xf0 -m comment --comment \"acmegw: "
                    "dropped flow, never forwarded\" -j DROP\n") != std::string::npos);
  CHECK(build_ruleset(cfg, Family::V6, kFake).chains.empty());
  CHECK(pass_v4.find("0x500000") == std::string::npos);
}

TEST_CASE("is_our_jump: the jump forms acmegw writes, nothing else", "[rules]") {
  CHECK(is_our_jump("-j ACMEGW-PRE", "ACMEGW-PRE"));
  CHECK(is_our_jump("-d 192.0.2.0/24 -j ACMEGW-PRE", "ACMEGW-PRE"));
  CHECK(is_our_jump("-d 2001:db8::/64 -j ACMEGW-PRE", "ACMEGW-PRE"));
  CHECK(is_our_jump("-m comment --comment acmegw -j ACMEGW-PRE", "ACMEGW-PRE"));
  CHECK_FALSE(is_our_jump("-d 192.0.2.1/32 -p tcp -j ACMEGW-PRE", "ACMEGW-PRE"));
  CHECK_FALSE(is_our_jump("-p udp -j ACMEGW-PRE", "ACMEGW-PRE"));
  CHECK_FALSE(is_our_jump("-d  -j ACMEGW-PRE", "ACMEGW-PRE"));
  CHECK_FALSE(is_our_jump("-j ACMEGW-PRE", "ACMEGW-PRE2"));
  CHECK_FALSE(is_our_jump("-j XACMEGW-PRE", "ACMEGW-PRE"));
}

TEST_CASE("ruleset: one hook jump per outermost protected network", "[rules]") {
  // 192.0.2.10 lies inside 192.0.2.0/24: a second jump would run PFX-PRE twice for it.
  const Config cfg = config({"192.0.2.10", "192.0.2.0/24:8080", "tls://192.0.2.10", "10.0.0.1"});
  const FamilyRuleset rs = build_ruleset(cfg, Family::V4, kFake);
  REQUIRE_FALSE(rs.chains.empty());
  CHECK(rs.chains[0].jumps ==
        std::vector<std::string>{"-d 192.0.2.0/24 -j ACMEGW-PRE", "-d 10.0.0.1/32 -j ACMEGW-PRE"});
  // The TOS routes and PFX-PRE's TOS rules still cover every distinct network.
  CHECK(protected_nets(cfg, Family::V4) ==
        std::vector<std::string>{"192.0.2.10/32", "192.0.2.0/24", "10.0.0.1/32"});
}
