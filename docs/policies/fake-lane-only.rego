# A ledger that only ever runs the fake lane (a CI smoke ledger, a demo): every run is
# of the fake provider shipped with cto-ledger, with the fake model or a scripted one,
# in a sandbox whose filesystem, network and signal rules the kernel enforces. Nothing
# is admitted by `admit` (the shipped fake is admitted for the fake lane on first run).
#
#   cto-ledger policy add docs/policies/fake-lane-only.rego --on admit --on run
package cto.fake_lane

import rego.v1

# The sandbox rules this ledger will not run without (`report.json`'s sandbox.rules).
required_rules := {"filesystem", "tcp", "abstract_unix_sockets", "signals"}

default allow := false

allow if count(deny) == 0

deny contains msg if {
	input.kind == "admission"
	msg := sprintf("this ledger runs only the fake lane: %s is not admitted", [input.candidate.name])
}

deny contains msg if {
	input.kind == "run"
	input.run.lane != "fake"
	msg := sprintf("only the fake lane runs here, not the %s lane", [input.run.lane])
}

deny contains msg if {
	input.kind == "run"
	not shipped_fake
	msg := sprintf("provider %v is not the fake shipped with cto-ledger", [input.provider.sha256])
}

shipped_fake if input.provider.admission.scope == "fake-lane"

deny contains msg if {
	input.kind == "run"
	not input.model.provider in {"fake", "scripted"}
	msg := sprintf("model %s/%s is not the fake or a scripted model (endpoint %v)", [input.model.provider, input.model.model, input.model.endpoint])
}

deny contains "the provider would run unconfined (--no-sandbox)" if {
	input.kind == "run"
	not input.sandbox.enabled
}

deny contains msg if {
	input.kind == "run"
	input.sandbox.enabled
	some r in input.sandbox.rules
	r.rule in required_rules
	not r.enforced
	msg := sprintf("sandbox rule %s is %s", [r.rule, r.by])
}
