package registryext

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // auth from --config
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the default storage
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"   // for tests
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"     // storage from --config; also drivers_*.go

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/immutability"
)

// logAndRules returns cfg's logger and rules, with the defaults for
// those unset: a logger that discards, immutability.Default().
func (cfg Config) logAndRules() (*slog.Logger, *immutability.Rules) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rules := cfg.Rules
	if rules == nil {
		rules = immutability.Default()
	}
	return log, rules
}

// Defaults of Distribution's that a configuration built in code does not
// get from configuration.Parse (v3.1.2: catalog.maxentries, tags.maxtags)
// or that ociwf's built-in configuration states (storage.maintenance:
// handlers' uploadPurgeDefaultConfig).
const (
	defaultMaxEntries   = 1000
	defaultMaxTags      = 1000
	defaultPurgeAge     = "168h"
	defaultPurgeEvery   = "24h"
	defaultPurgeEnabled = true
)

// distributionConfig returns the Distribution configuration for cfg: a
// copy of cfg.Distribution, or one for filesystem (or in-memory) storage
// with Distribution's defaults.
func distributionConfig(cfg Config) (*configuration.Configuration, error) {
	conf := cfg.Distribution
	if conf == nil {
		secret, err := httpSecret(cfg.Root)
		if err != nil {
			return nil, err
		}
		storage := configuration.Storage{"inmemory": configuration.Parameters{}}
		if cfg.Root != "" {
			storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": cfg.Root}}
		}
		storage["delete"] = configuration.Parameters{"enabled": true}
		// Abandoned uploads are purged as stock Distribution does.
		storage["maintenance"] = configuration.Parameters{"uploadpurging": map[any]any{
			"enabled": defaultPurgeEnabled, "age": defaultPurgeAge, "interval": defaultPurgeEvery, "dryrun": false,
		}}
		conf = &configuration.Configuration{Version: "0.1", Storage: storage}
		conf.HTTP.Secret = secret
		conf.Log.Level = "warn"
		// Manifests may name non-distributable layers by URL.
		conf.Validation.Manifests.URLs.Allow = []string{"^https?://"}
	} else {
		c := *conf
		conf = &c
	}
	// As configuration.Parse's conversion of a version 0.1 file does.
	if conf.Catalog.MaxEntries <= 0 {
		conf.Catalog.MaxEntries = defaultMaxEntries
	}
	if conf.Tags.MaxTags < 0 {
		return nil, errors.New("registry: maxtags limit must be a non-negative integer value")
	}
	if conf.Tags.MaxTags == 0 {
		conf.Tags.MaxTags = defaultMaxTags
	}
	return conf, nil
}

// secretFile holds, under a filesystem storage root, the http.secret that
// signs upload session state: kept with the storage, an upload begun
// before a restart (or through another process serving the same root)
// completes after it.
const secretFile = ".ociwf-http-secret"

// httpSecret returns the http.secret for storage under root: the one
// stored there, or a new random one stored create-only (link(2), so that
// processes starting at once agree on one); for in-memory storage (root
// empty), a new one.
func httpSecret(root string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	fresh := hex.EncodeToString(b)
	if root == "" {
		return fresh, nil
	}
	path := filepath.Join(root, secretFile)
	if raw, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(raw)) >= 32 {
		return string(bytes.TrimSpace(raw)), nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("registry: storage root %s: %w", root, err)
	}
	tmp, err := os.CreateTemp(root, secretFile+".*")
	if err != nil {
		return "", fmt.Errorf("registry: store the upload secret under %s: %w", root, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(fresh + "\n")
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		return "", fmt.Errorf("registry: store the upload secret under %s: %w", root, errors.Join(werr, cerr))
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("registry: store the upload secret under %s: %w", root, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(raw)) < 32 {
		return "", fmt.Errorf("registry: read the upload secret %s (remove it to make a new one): %w", path, errors.Join(err, errdef.ErrInvalid))
	}
	return string(bytes.TrimSpace(raw)), nil
}

// newApp builds Distribution's application with ociwf's middleware added
// to conf. Distribution reports configuration errors by panicking; they
// come back here as errors.
func newApp(ctx context.Context, conf *configuration.Configuration, p *protection) (app *handlers.App, err error) {
	c := *conf
	conf = &c
	mw := map[string][]configuration.Middleware{}
	for k, v := range conf.Middleware {
		mw[k] = v
	}
	mw["repository"] = append(slices.Clone(mw["repository"]), configuration.Middleware{Name: MiddlewareName, Options: configuration.Parameters{OptionProtection: p}})
	// First, so that it wraps the storage driver itself.
	mw["storage"] = append([]configuration.Middleware{{Name: MiddlewareName, Options: configuration.Parameters{OptionCreateOnly: p.createOnly}}}, mw["storage"]...)
	conf.Middleware = mw
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry: configure distribution: %v", r)
		}
	}()
	return handlers.NewApp(ctx, conf), nil
}
