package provenance

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
