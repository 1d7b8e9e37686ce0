# Lockgate's built-in policy pack: the default gates, as readable, testable Rego.
#
# Input: the `lockgate.input/v1` document (see schema/input.v1.json; `lockgate schema`).
# Results, collected from every package (this one and the team's):
#   deny             contains {"rule", "message"}                     -> blocked
#   require_approval contains {"rule", "owners", "count", "reason"}   -> needs approval
#   warn             contains {"rule", "message"}                     -> reported
#   notes            contains {"rule", "message"}                     -> reported (info)
# Only this package can allow an automatic merge (`allow_auto_merge`); with no allow,
# no deny and no required approval, Lockgate fails closed to "needs approval".
#
# Rule ids starting with `secrets.`, `input.` or `policy.` cannot be disabled by
# `policy.disabled_rules`; the others can.
package lockgate.builtin

import rego.v1

# ── who is gated ───────────────────────────────────────────────────────────────
# Agents, bots and mixed ranges are gated; humans only if the team says so.
gated if input.author.kind != "human"

gated if input.config.gate_humans

# The trust axis is the measured trust score's band (fast → high, normal → medium,
# senior → low), capped by the agent's configured trust (agents.trust). A gated human
# (gate_humans) is treated as a high-trust author.
trust_band := input.trust.matrix_trust if input.author.trust

trust_band := "high" if not input.author.trust

# ── the risk matrix ────────────────────────────────────────────────────────────
route_rank := {"automate": 0, "approve": 1, "gate": 2, "forbid": 3}

matrix_route := input.config.matrix[input.impact][trust_band]

# Files that are never automated for a gated author: secrets, auth, governance
# (an agent editing its own gate) and direct production deploy config, by default.
never_automate contains sprintf("%s (%s)", [f.path, c]) if {
	some f in input.files
	some c in f.categories
	c in input.config.never_automate
}

never_automate contains sprintf("%s (%s)", [f.path, flag]) if {
	some f in input.files
	some flag in f.flags
	flag in input.config.never_automate_flags
}

floor_route := "gate" if count(never_automate) > 0

default floor_route := "automate"

route := matrix_route if {
	gated
	route_rank[matrix_route] >= route_rank[floor_route]
}

route := floor_route if {
	gated
	route_rank[floor_route] > route_rank[matrix_route]
}

allow_auto_merge if not gated

allow_auto_merge if route == "automate"

who := sprintf("%s %s", [input.author.kind, input.author.agent]) if input.author.agent

who := input.author.kind if not input.author.agent

notes contains {"rule": "route.summary", "message": msg} if {
	gated
	msg := sprintf(
		"route %s: %s impact (%s), author %s, trust score %d (%s band: %s trust)",
		[route, input.impact, concat(", ", input.categories), who, input.trust.score, input.trust.band, trust_band],
	)
}

notes contains {"rule": "route.human", "message": msg} if {
	not gated
	msg := "human change: agent gates do not apply (set policy.gate_humans to extend them)"
}

notes contains {"rule": "route.never_automate", "message": msg} if {
	gated
	count(never_automate) > 0
	items := sort([x | some x in never_automate])
	msg := sprintf("never automated for agents: %s", [concat(", ", items)])
}

deny contains {"rule": "route.forbid", "message": msg} if {
	route == "forbid"
	msg := sprintf(
		"%s impact change by %s with %s trust is not allowed (risk matrix: forbid)",
		[input.impact, who, trust_band],
	)
}

# ── approvals per owner group ──────────────────────────────────────────────────
# Each group of files with the same owners gets its own route from its own impact,
# so a low-impact test file next to a risky one does not need its owners' sign-off.
# Files no CODEOWNERS line owns form a group with no owners: the fallback reviewers
# (review.fallback_reviewers) are asked, or any maintainer when that is empty.
default group_floor(_) := "automate"

group_floor(g) := "gate" if {
	some c in g.categories
	c in input.config.never_automate
}

group_floor(g) := "gate" if {
	some flag in g.flags
	flag in input.config.never_automate_flags
}

group_route(g) := max_route(input.config.matrix[g.impact][trust_band], group_floor(g))

max_route(a, b) := a if route_rank[a] >= route_rank[b]

max_route(a, b) := b if route_rank[b] > route_rank[a]

approval_count(r, impact) := input.config.review.gate_approvals if {
	r == "gate"
	impact == "critical"
}

approval_count(r, impact) := input.config.review.approvals if {
	r == "gate"
	impact != "critical"
}

approval_count("approve", _) := input.config.review.approvals

group_owners(g) := g.owners if count(g.owners) > 0

group_owners(g) := input.config.review.fallback_reviewers if count(g.owners) == 0

owned_by(g) := sprintf("owned by %s", [concat(" ", g.owners)]) if count(g.owners) > 0

owned_by(g) := "with no CODEOWNERS owner" if count(g.owners) == 0

require_approval contains a if {
	gated
	route != "forbid"
	some g in input.owners.groups
	r := group_route(g)
	r in {"approve", "gate"}
	a := {
		"rule": sprintf("route.%s", [r]),
		"owners": group_owners(g),
		"count": approval_count(r, g.impact),
		"reason": sprintf(
			"%s: %s impact (%s) in %d file(s) %s",
			[r, g.impact, concat(", ", g.categories), count(g.files), owned_by(g)],
		),
	}
}

warn contains {"rule": "owners.none", "message": msg} if {
	gated
	some g in input.owners.groups
	count(g.owners) == 0
	group_route(g) in {"approve", "gate"}
	count(input.config.review.fallback_reviewers) == 0
	msg := "some gated files have no CODEOWNERS owner and review.fallback_reviewers is empty: any maintainer can approve"
}

# ── rules for everyone ─────────────────────────────────────────────────────────
# A leaked secret blocks anyone's change.
deny contains {"rule": "secrets.leaked", "message": msg} if {
	some f in input.findings
	f.kind == "secret"
	msg := sprintf(
		"%s:%d: %s; remove it from the change and rotate the credential",
		[f.path, f.line, f.message],
	)
}

deny contains {"rule": "input.non_utf8_path", "message": msg} if {
	some f in input.findings
	f.rule == "input.non_utf8_path"
	msg := sprintf("%s: %s", [f.path, f.message])
}

require_approval contains a if {
	input.change.truncated
	a := {
		"rule": "input.truncated",
		"owners": input.config.review.fallback_reviewers,
		"count": 1,
		"reason": sprintf(
			"the change was not fully scanned (%s); a person must review it",
			[concat("; ", input.change.notes)],
		),
	}
}

warn contains {"rule": "owners.codeowners_errors", "message": msg} if {
	some e in input.owners.errors
	msg := sprintf("%s:%d: %s (GitHub skips this line)", [input.owners.file, e.line, e.message])
}

# ── provenance ─────────────────────────────────────────────────────────────────
# A forged or corrupted attestation, or one signed by a revoked key, blocks.
deny contains {"rule": "provenance.invalid", "message": msg} if {
	some c in input.provenance.commits
	c.status == "invalid"
	msg := sprintf("commit %s: invalid attestation: %s", [substring(c.commit, 0, 12), concat("; ", c.reasons)])
}

deny contains {"rule": "provenance.revoked", "message": msg} if {
	some c in input.provenance.commits
	c.status == "revoked"
	msg := sprintf("commit %s: attestation signed by a revoked key", [substring(c.commit, 0, 12)])
}

# An agent change without valid provenance never merges on its own.
unproven contains sprintf("%s (%s)", [substring(c.commit, 0, 12), c.status]) if {
	some c in input.provenance.commits
	c.status in {"missing", "untrusted_key", "stale"}
}

require_approval contains a if {
	gated
	count(unproven) > 0
	a := {
		"rule": "provenance.required",
		"owners": input.config.review.fallback_reviewers,
		"count": 1,
		"reason": sprintf(
			"agent commits without valid provenance: %s (attest with `lockgate attest`; trust keys in .lockgate/trust.toml)",
			[concat(", ", sort([x | some x in unproven]))],
		),
	}
}

warn contains {"rule": "provenance.agent_mismatch", "message": msg} if {
	some c in input.provenance.commits
	c.agent_matches_commit == false
	msg := sprintf(
		"commit %s: signed for agent %s, but the commit identifies a different agent",
		[substring(c.commit, 0, 12), c.agent],
	)
}

notes contains {"rule": "provenance.summary", "message": msg} if {
	count(input.provenance.commits) > 0
	parts := [sprintf("%d %s", [n, s]) | some s, n in input.provenance.summary]
	msg := sprintf("provenance of agent commits: %s", [concat(", ", parts)])
}

# ── trust score and evidence ───────────────────────────────────────────────────
# Below the normal band, senior reviewers sign off too (review.senior_reviewers).
weak_factors := sort([sprintf("%s %d", [f.name, f.score]) |
	some f in input.trust.factors
	f.score < 50
])

require_approval contains a if {
	gated
	input.author.trust
	input.trust.band == "senior"
	route != "forbid"
	a := {
		"rule": "trust.senior_review",
		"owners": input.config.review.senior_reviewers,
		"count": input.config.review.senior_approvals,
		"reason": sprintf(
			"trust score %d is below %d (senior review); weakest factors: %s",
			[input.trust.score, input.config.trust.normal, concat(", ", weak_factors)],
		),
	}
}

# Failing tests and new serious findings never merge on their own, whatever the score.
require_approval contains a if {
	gated
	t := input.evidence.tests
	t.failed + t.errored > 0
	a := {
		"rule": "evidence.tests_failed",
		"owners": input.config.review.fallback_reviewers,
		"count": 1,
		"reason": sprintf("%d test(s) failed and %d errored: %s", [t.failed, t.errored, concat("; ", array.slice(t.failures, 0, 3))]),
	}
}

serious_findings := [sprintf("%s:%d %s (%s)", [f.path, object.get(f, "line", 0), f.rule_id, f.severity]) |
	some f in input.evidence.sarif.new
	f.severity in {"critical", "high"}
]

require_approval contains a if {
	gated
	count(serious_findings) > 0
	a := {
		"rule": "evidence.new_findings",
		"owners": input.config.review.fallback_reviewers,
		"count": 1,
		"reason": sprintf("new high-severity static analysis findings on added lines: %s", [concat("; ", array.slice(serious_findings, 0, 5))]),
	}
}

warn contains {"rule": "evidence.missing", "message": msg} if {
	count(input.evidence.missing_required) > 0
	msg := sprintf(
		"required evidence not provided: %s (its trust factor scores 0)",
		[concat(", ", input.evidence.missing_required)],
	)
}

# A Terraform plan that destroys data or changes access needs the gate's approvals
# from the owners of the infrastructure code.
infra_owners := sort({o | some f in input.files; "infra" in f.categories; some o in f.owners})

terraform_owners := infra_owners if count(infra_owners) > 0

terraform_owners := input.config.review.fallback_reviewers if count(infra_owners) == 0

require_approval contains a if {
	gated
	tf := input.evidence.terraform
	tf.destructive_count > 0
	a := {
		"rule": "evidence.terraform_destructive",
		"owners": terraform_owners,
		"count": input.config.review.gate_approvals,
		"reason": sprintf(
			"the Terraform plan destroys or replaces %d stateful resource(s): %s",
			[tf.destructive_count, concat(", ", array.slice(tf.destructive, 0, 5))],
		),
	}
}

require_approval contains a if {
	gated
	tf := input.evidence.terraform
	tf.access_count > 0
	a := {
		"rule": "evidence.terraform_access",
		"owners": terraform_owners,
		"count": input.config.review.gate_approvals,
		"reason": sprintf(
			"the Terraform plan changes %d access-granting resource(s) (auth): %s",
			[tf.access_count, concat(", ", array.slice(tf.access, 0, 5))],
		),
	}
}

# ── agent-specific checks ──────────────────────────────────────────────────────
# An agent that deletes tests may be making a failing suite pass.
require_approval contains a if {
	gated
	deleted := [f.path | some f in input.files; f.status == "deleted"; "tests" in f.categories]
	count(deleted) > 0
	a := {
		"rule": "tests.deleted",
		"owners": input.config.review.fallback_reviewers,
		"count": 1,
		"reason": sprintf("%s deleted test files: %s", [who, concat(", ", deleted)]),
	}
}

warn contains {"rule": "author.weak_evidence", "message": msg} if {
	some a in input.author.agents
	a.weak
	msg := sprintf("%s identified only by a message marker, not by identity or trailer", [a.id])
}

warn contains {"rule": "author.mixed", "message": msg} if {
	input.author.kind == "mixed"
	msg := sprintf(
		"range mixes human and agent commits (humans: %s); gated as an agent change",
		[concat(", ", input.author.humans)],
	)
}
