package registryext

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // auth from --config
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"      // storage from --config
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the default storage
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // for tests
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

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
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
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
		conf.HTTP.Secret = hex.EncodeToString(secret)
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
	conf.Middleware = mw
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry: configure distribution: %v", r)
		}
	}()
	return handlers.NewApp(ctx, conf), nil
}
