# `cto-ledger policy test docs/policies` runs these.
package cto.examples_test

import rego.v1

import data.cto.fake_lane
import data.cto.reproduced
import data.cto.team

key := {"keyid": "k1", "algorithm": "ed25519", "revoked": false, "retired": false}

bun := {"name": "bun", "path": "/usr/bin/bun", "version": "1.3.14", "sha256": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}

build := {
	"id": "bld_1", "tools": [bun], "reproduced": true,
	"signatures": [{"keyid": "k1", "checkpoint_size": 9}],
	"modified": [{"path": "src/generated/package-assets.ts"}],
}

good := {
	"kind": "admission",
	"candidate": {"name": "ca"},
	"source": {"url": "https://github.com/workos/case", "changes": []},
	"allowed_modified": [],
	"build": build,
	"keys": [key],
}

test_team_admits_a_reproduced_bun_build_of_case if team.allow with input as good

test_team_accepts_the_builds_own_edit if {
	# A tracked file the build rewrote is accepted as the build's own edit.
	own := [{"path": "src/generated/package-assets.ts", "by": "build"}]
	team.allow with input as object.union(good, {"allowed_modified": own})
}

test_team_refuses_another_repository if {
	not team.allow with input as object.union(good, {"source": {"url": "https://github.com/evil/case"}})
	some m in team.deny with input as object.union(good, {"source": {"url": "https://github.com/evil/case"}})
	contains(m, "not github.com/workos/case")
}

test_team_refuses_an_unreviewed_bun if {
	other := object.union(bun, {"sha256": "sha256:1111111111111111111111111111111111111111111111111111111111111111"})
	not team.allow with input as object.union(good, {"build": object.union(build, {"tools": [other]})})
}

test_team_refuses_a_diverging_rebuild if {
	not team.allow with input as object.union(good, {"build": object.union(build, {"reproduced": false})})
}

test_team_refuses_allow_modified if {
	typed := [{"path": "gen.ts", "by": "allow-modified"}]
	some m in team.deny with input as object.union(good, {"allowed_modified": typed})
	contains(m, "gen.ts is not the recorded build's own edit (allow-modified)")
}

test_reproduced_admits_a_signed_reproduced_build if reproduced.allow with input as good

test_reproduced_refuses_an_unsigned_build if {
	not reproduced.allow with input as object.union(good, {"build": object.union(build, {"signatures": []})})
}

test_reproduced_refuses_a_revoked_key if {
	not reproduced.allow with input as object.union(good, {"keys": [object.union(key, {"revoked": true})]})
}

test_reproduced_refuses_no_build if {
	not reproduced.allow with input as object.union(good, {"build": null})
}

# Runs: the provider's admission graph, the model, the sandbox rules as the kernel
# enforces them.
rules := [
	{"rule": "filesystem", "enforced": true, "by": "Landlock ABI 7"},
	{"rule": "tcp", "enforced": true, "by": "Landlock ABI 7 and a network namespace"},
	{"rule": "udp", "enforced": false, "by": "not restricted: the model's host name must resolve (DNS)"},
	{"rule": "signals", "enforced": true, "by": "Landlock ABI 7 signal scoping"},
	{"rule": "abstract_unix_sockets", "enforced": true, "by": "Landlock ABI 7 abstract socket scoping"},
]

sandbox := {"enabled": true, "rules": rules}

case_run := {
	"kind": "run",
	"run": {"lane": "case"},
	"provider": {"sha256": "sha256:ab", "admission": object.union(good, {"id": "adm_1", "scope": "any", "revoked": false})},
	"model": {"provider": "scripted", "model": "r1-string-slugify", "endpoint": null},
	"sandbox": sandbox,
}

unenforced(rule) := [object.union(r, {"enforced": false, "by": "not enforced: Landlock ABI 5 has no signal scoping (ABI 6)"}) |
	some r in rules
	r.rule == rule
]

with_rule_unenforced(rule) := object.union(sandbox, {"rules": array.concat([r | some r in rules; r.rule != rule], unenforced(rule))})

test_team_runs_a_scripted_model_in_the_sandbox if team.allow with input as case_run

test_team_runs_a_model_served_on_loopback if {
	local := {"provider": "ollama", "model": "qwen", "endpoint": "http://127.0.0.1:11434/v1"}
	team.allow with input as object.union(case_run, {"model": local})
}

test_team_refuses_a_model_endpoint_off_the_allowlist if {
	hosted := {"provider": "openai", "model": "gpt-5", "endpoint": "https://api.openai.com/v1"}
	some m in team.deny with input as object.union(case_run, {"model": hosted})
	contains(m, "neither scripted nor served on this machine")
}

test_team_refuses_a_look_alike_loopback_host if {
	sneaky := {"provider": "x", "model": "y", "endpoint": "http://127.0.0.1.evil.example/v1"}
	not team.allow with input as object.union(case_run, {"model": sneaky})
}

test_team_refuses_a_network_rule_the_kernel_cannot_enforce if {
	some m in team.deny with input as object.union(case_run, {"sandbox": with_rule_unenforced("tcp")})
	contains(m, "network rule tcp is not enforced")
}

test_team_refuses_an_unconfined_run if {
	some m in team.deny with input as object.union(case_run, {"sandbox": {"enabled": false, "rules": []}})
	contains(m, "unconfined")
}

test_team_refuses_a_run_of_an_unreproduced_provider if {
	diverged := object.union(case_run.provider.admission, {"build": object.union(build, {"reproduced": false})})
	not team.allow with input as object.union(case_run, {"provider": {"admission": diverged}})
}

test_team_refuses_a_revoked_provider if {
	revoked := object.union(case_run.provider.admission, {"revoked": true})
	not team.allow with input as object.union(case_run, {"provider": {"admission": revoked}})
}

fake_run := {
	"kind": "run",
	"run": {"lane": "fake"},
	"provider": {"sha256": "sha256:fa", "admission": {"id": "adm_2", "scope": "fake-lane", "source": null, "build": null}},
	"model": {"provider": "fake", "model": "fake-model", "endpoint": null},
	"sandbox": sandbox,
}

test_fake_lane_runs_the_shipped_fake if fake_lane.allow with input as fake_run

test_fake_lane_runs_a_scripted_model if {
	fake_lane.allow with input as object.union(fake_run, {"model": {"provider": "scripted", "model": "r1"}})
}

test_fake_lane_refuses_the_case_lane if {
	not fake_lane.allow with input as case_run
}

test_fake_lane_refuses_a_hosted_model if {
	hosted := {"provider": "openai", "model": "gpt-5", "endpoint": "https://api.openai.com/v1"}
	some m in fake_lane.deny with input as object.union(fake_run, {"model": hosted})
	contains(m, "not the fake or a scripted model")
}

test_fake_lane_refuses_a_signal_rule_the_kernel_cannot_enforce if {
	some m in fake_lane.deny with input as object.union(fake_run, {"sandbox": with_rule_unenforced("signals")})
	contains(m, "sandbox rule signals is not enforced")
}

test_fake_lane_refuses_every_admission if {
	not fake_lane.allow with input as good
}

test_team_refuses_the_fake_lane if {
	not team.allow with input as fake_run
}
