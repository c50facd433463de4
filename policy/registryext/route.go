package registryext

import (
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// route is what a /v2/ path names.
type route struct {
	repo, kind, ref string // kind: manifests, blobs, uploads, referrers
}

// Routes as Distribution's router matches them (registry/api/v2): the
// name is a repository name, never a path with "." or ".." components.
// Compiled once and never written, they are constants in effect;
// compiling them per request would cost every request.
var (
	nameRe      = "(" + reference.NameRegexp.String() + ")"
	uploadsRe   = regexp.MustCompile(`^/v2/` + nameRe + `/blobs/uploads/?([^/]*)$`)
	manifestsRe = regexp.MustCompile(`^/v2/` + nameRe + `/manifests/(` + reference.TagRegexp.String() + `|` + reference.DigestRegexp.String() + `)$`)
	blobsRe     = regexp.MustCompile(`^/v2/` + nameRe + `/blobs/(` + reference.DigestRegexp.String() + `)$`)
	referrersRe = regexp.MustCompile(`^/v2/` + nameRe + `/referrers/([^/]+)$`)
)

// parseRoute splits /v2/NAME/manifests/REF, /v2/NAME/blobs/DIGEST,
// /v2/NAME/blobs/uploads/[ID] and /v2/NAME/referrers/DIGEST; prefix is
// Distribution's http.prefix.
func parseRoute(prefix, path string) (route, bool) {
	path = strings.TrimPrefix(path, strings.TrimSuffix(prefix, "/"))
	for _, r := range []struct {
		re   *regexp.Regexp
		kind string
	}{{uploadsRe, "uploads"}, {manifestsRe, "manifests"}, {blobsRe, "blobs"}, {referrersRe, "referrers"}} {
		if m := r.re.FindStringSubmatch(path); m != nil {
			return route{repo: m[1], kind: r.kind, ref: m[len(m)-1]}, true
		}
	}
	return route{}, false
}
