package provenance

import "strings"

// Environment is what a CI system says about the run, detected from its
// environment variables.
type Environment struct {
	// System is "github-actions", "gitlab-ci" or "" when none was found.
	System         string
	BuilderID      string
	SourceURI      string
	SourceRef      string
	SourceRevision string
	InvocationID   string
}

// Detect reads GitHub Actions' or GitLab CI's predefined variables through
// getenv (os.Getenv in programs, a map in tests). Outside CI it returns the
// zero Environment.
func Detect(getenv func(string) string) Environment {
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		server := getenv("GITHUB_SERVER_URL")
		if server == "" {
			server = "https://github.com"
		}
		repo := getenv("GITHUB_REPOSITORY")
		env := Environment{
			System:         "github-actions",
			BuilderID:      server + "/" + repo + "/actions",
			SourceRef:      getenv("GITHUB_REF"),
			SourceRevision: getenv("GITHUB_SHA"),
		}
		// The workflow that ran is the builder (as slsa-github-generator
		// names it): server/owner/repo/.github/workflows/f.yml@ref.
		if wf := getenv("GITHUB_WORKFLOW_REF"); wf != "" {
			env.BuilderID = server + "/" + wf
		}
		if repo != "" {
			env.SourceURI = "git+" + server + "/" + repo
		}
		if run := getenv("GITHUB_RUN_ID"); run != "" && repo != "" {
			env.InvocationID = server + "/" + repo + "/actions/runs/" + run
			if a := getenv("GITHUB_RUN_ATTEMPT"); a != "" {
				env.InvocationID += "/attempts/" + a
			}
		}
		return env
	case getenv("GITLAB_CI") == "true":
		env := Environment{
			System:         "gitlab-ci",
			SourceRevision: getenv("CI_COMMIT_SHA"),
			InvocationID:   getenv("CI_JOB_URL"),
		}
		if p := getenv("CI_PROJECT_URL"); p != "" {
			env.SourceURI = "git+" + p
			env.BuilderID = p + "/-/jobs"
			if r := getenv("CI_RUNNER_ID"); r != "" {
				env.BuilderID = p + "/-/runners/" + r
			}
		}
		switch {
		case getenv("CI_COMMIT_TAG") != "":
			env.SourceRef = "refs/tags/" + getenv("CI_COMMIT_TAG")
		case getenv("CI_COMMIT_BRANCH") != "":
			env.SourceRef = "refs/heads/" + getenv("CI_COMMIT_BRANCH")
		default:
			env.SourceRef = getenv("CI_COMMIT_REF_NAME")
		}
		return env
	}
	return Environment{}
}

// BuilderIDVariable names the environment variable that sets the builder
// ID when no option does, ahead of the CI system's own.
const BuilderIDVariable = "OCIWF_BUILDER_ID"

// FromEnv completes opts from $OCIWF_BUILDER_ID and the CI system's
// variables (Detect), read through getenv; fields already set win.
func FromEnv(getenv func(string) string, opts Options) Options {
	env := Detect(getenv)
	set := func(dst *string, vs ...string) {
		for _, v := range vs {
			if *dst == "" {
				*dst = v
			}
		}
	}
	set(&opts.BuilderID, getenv(BuilderIDVariable), env.BuilderID)
	set(&opts.SourceURI, env.SourceURI)
	set(&opts.SourceRef, env.SourceRef)
	set(&opts.SourceRevision, env.SourceRevision)
	set(&opts.InvocationID, env.InvocationID)
	return opts
}

// SourceURL is SourceURI without the "git+" prefix of SLSA's and SPDX's
// download locations: the plain URL that the OCI source annotation
// (org.opencontainers.image.source) holds.
func (o Options) SourceURL() string { return strings.TrimPrefix(o.SourceURI, "git+") }
