#!/bin/sh
# lockgate-ci.sh — run `lockgate check` in CI and report the decision where the forge
# shows it. The GitHub Action, the GitLab template and the Jenkinsfile all run this.
#
# What it does:
#   1. `lockgate check` → decision.json (recorded on a Lockgate server when
#      LOCKGATE_SERVER and LOCKGATE_SERVER_TOKEN are set), lockgate.md (the PR comment),
#      lockgate.sarif (code scanning), all in $LOCKGATE_OUT_DIR.
#   2. GitHub Actions: the step summary, one PR comment kept up to date, a
#      `lockgate:<verdict>` label (gh CLI; GH_TOKEN).
#      GitLab CI: one merge request note kept up to date, a scoped `lockgate::<verdict>`
#      label (curl + jq; LOCKGATE_GITLAB_TOKEN with api scope).
#   3. Exits 0 when the change may merge, 3 when it needs approval, 4 when blocked
#      (LOCKGATE_FAIL_ON=blocked lets a change that needs approval pass this job), 1 on
#      a tool error — never green by accident.
#
# Settings (environment):
#   LOCKGATE_BIN        the lockgate binary (default: lockgate on PATH)
#   LOCKGATE_BASE       base revision (default: lockgate's own: $GITHUB_BASE_REF,
#                       $CI_MERGE_REQUEST_TARGET_BRANCH_NAME on origin, origin/main, …)
#   LOCKGATE_HEAD       head revision (default HEAD)
#   LOCKGATE_OUT_DIR    where the reports go (default lockgate-out)
#   LOCKGATE_FAIL_ON    needs_approval (default) or blocked
#   LOCKGATE_ARGS       more `lockgate check` arguments (evidence: --junit F --coverage F …)
#   LOCKGATE_PR_NUMBER  the pull request (GitHub); LOCKGATE_COMMENT=false and
#                       LOCKGATE_LABELS=false turn the comment and labels off
#   LOCKGATE_FETCH_NOTES=false  do not fetch refs/notes/lockgate (the provenance)
#                       from origin first
set -u

bin=${LOCKGATE_BIN:-lockgate}
out=${LOCKGATE_OUT_DIR:-lockgate-out}
fail_on=${LOCKGATE_FAIL_ON:-needs_approval}
marker='<!-- lockgate:decision -->'
mkdir -p "$out"

case "$fail_on" in
  needs_approval|blocked) ;;
  *) echo "lockgate-ci: LOCKGATE_FAIL_ON must be needs_approval or blocked" >&2; exit 1 ;;
esac

# Provenance travels as git notes: fetch them (a remote without any is fine).
if [ "${LOCKGATE_FETCH_NOTES:-true}" != false ] && git remote get-url origin >/dev/null 2>&1; then
  git fetch --quiet --no-tags origin "+refs/notes/lockgate:refs/notes/lockgate" 2>/dev/null || true
fi

# The range. Word splitting of LOCKGATE_ARGS is intended (several flags).
set -- --head "${LOCKGATE_HEAD:-HEAD}"
if [ -n "${LOCKGATE_BASE:-}" ]; then
  set -- "$@" --base "$LOCKGATE_BASE"
fi
# shellcheck disable=SC2086
set -- "$@" ${LOCKGATE_ARGS:-}

# 1. The decision (recorded on the server, if one is configured), then the other views
#    of the same decision without recording it again.
"$bin" check "$@" --format json --output "$out/decision.json"
code=$?
case "$code" in
  0) verdict=auto_merge ;;
  3) verdict=needs_approval ;;
  4) verdict=blocked ;;
  *) echo "lockgate-ci: lockgate check failed (exit $code)" >&2; exit 1 ;;
esac
for format in markdown sarif; do
  file="$out/lockgate.$format"
  [ "$format" = markdown ] && file="$out/lockgate.md"
  # (Without the server, approvals already given there do not count here: the exit
  # code of these runs may say 3 where the recorded decision's says 0.)
  env -u LOCKGATE_SERVER "$bin" check "$@" --format "$format" --output "$file"
  case $? in
    0|3|4) ;;
    *) echo "lockgate-ci: lockgate check --format $format failed" >&2; exit 1 ;;
  esac
done
echo "lockgate: $verdict (reports in $out/)"
echo "$verdict" > "$out/verdict"
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "verdict=$verdict" >> "$GITHUB_OUTPUT"
fi

# The comment is the report, marked so the next run finds and updates it (lockgate's
# Markdown starts with the marker already).
comment="$out/comment.md"
if [ "$(head -n 1 "$out/lockgate.md")" = "$marker" ]; then
  cp "$out/lockgate.md" "$comment"
else
  { echo "$marker"; cat "$out/lockgate.md"; } > "$comment"
fi

# 2a. GitHub Actions.
if [ "${GITHUB_ACTIONS:-}" = true ]; then
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$out/lockgate.md" >> "$GITHUB_STEP_SUMMARY"
  fi
  pr=${LOCKGATE_PR_NUMBER:-}
  repo=${GITHUB_REPOSITORY:-}
  if [ -n "$pr" ] && [ -n "$repo" ] && command -v gh >/dev/null; then
    if [ "${LOCKGATE_COMMENT:-true}" != false ]; then
      id=$(gh api "repos/$repo/issues/$pr/comments" --paginate \
        --jq ".[] | select(.body | startswith(\"$marker\")) | .id" | head -n 1)
      if [ -n "$id" ]; then
        gh api -X PATCH "repos/$repo/issues/comments/$id" -F "body=@$comment" >/dev/null \
          || echo "lockgate-ci: could not update the PR comment" >&2
      else
        gh api -X POST "repos/$repo/issues/$pr/comments" -F "body=@$comment" >/dev/null \
          || echo "lockgate-ci: could not comment on the PR" >&2
      fi
    fi
    if [ "${LOCKGATE_LABELS:-true}" != false ]; then
      for other in auto_merge needs_approval blocked; do
        if [ "$other" != "$verdict" ]; then
          gh api -X DELETE "repos/$repo/issues/$pr/labels/lockgate:$other" >/dev/null 2>&1 || true
        fi
      done
      gh api -X POST "repos/$repo/issues/$pr/labels" -f "labels[]=lockgate:$verdict" >/dev/null \
        || echo "lockgate-ci: could not label the PR" >&2
    fi
  fi
fi

# 2b. GitLab CI (merge request pipelines).
if [ "${GITLAB_CI:-}" = true ] && [ -n "${CI_MERGE_REQUEST_IID:-}" ] && [ -n "${LOCKGATE_GITLAB_TOKEN:-}" ]; then
  api="$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID"
  auth="PRIVATE-TOKEN: $LOCKGATE_GITLAB_TOKEN"
  body=$(jq -Rs '{body: .}' < "$comment")
  id=$(curl -fsS -H "$auth" "$api/notes?per_page=100&sort=asc" \
    | jq -r --arg m "$marker" '[.[] | select(.body | startswith($m)) | .id][0] // empty')
  if [ -n "$id" ]; then
    printf '%s' "$body" | curl -fsS -X PUT -H "$auth" -H 'Content-Type: application/json' \
      --data-binary @- "$api/notes/$id" >/dev/null || echo "lockgate-ci: could not update the MR note" >&2
  else
    printf '%s' "$body" | curl -fsS -X POST -H "$auth" -H 'Content-Type: application/json' \
      --data-binary @- "$api/notes" >/dev/null || echo "lockgate-ci: could not comment on the MR" >&2
  fi
  curl -fsS -X PUT -H "$auth" --data-urlencode "add_labels=lockgate::$verdict" "$api" >/dev/null \
    || echo "lockgate-ci: could not label the MR" >&2
fi

# 3. The job's result.
if [ "$code" = 3 ] && [ "$fail_on" = blocked ]; then
  exit 0
fi
exit "$code"
