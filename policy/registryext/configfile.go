package registryext

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"go.yaml.in/yaml/v3"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

// MaxConfigBytes bounds a configuration file.
const MaxConfigBytes = 4 << 20

// fileSection is the ociwf section of a configuration file.
type fileSection struct {
	Lifecycle    *lifecycleSection    `yaml:"lifecycle"`
	Alerts       *alertsSection       `yaml:"alerts"`
	Coordination *coordinationSection `yaml:"coordination"`
}

// coordinationSection is ociwf.coordination (Coordination).
type coordinationSection struct {
	Mode     string        `yaml:"mode"`
	Dir      string        `yaml:"dir"`
	Wait     time.Duration `yaml:"wait"`
	CacheTTL time.Duration `yaml:"cacheTTL"`
	Redis    *struct {
		Addr     string        `yaml:"addr"`
		Username string        `yaml:"username"`
		Password string        `yaml:"password"`
		DB       int           `yaml:"db"`
		Lease    time.Duration `yaml:"lease"`
		Prefix   string        `yaml:"prefix"`
	} `yaml:"redis"`
}

// alertsSection is ociwf.alerts: where alerts for refused requests go.
type alertsSection struct {
	Webhook *webhookSection `yaml:"webhook"`
}

// webhookSection is ociwf.alerts.webhook (AlertWebhook).
type webhookSection struct {
	URL       string              `yaml:"url"`
	Timeout   time.Duration       `yaml:"timeout"`
	Threshold int                 `yaml:"threshold"`
	Backoff   time.Duration       `yaml:"backoff"`
	Headers   map[string][]string `yaml:"headers"`
	Queue     int                 `yaml:"queue"`
}

// lifecycleSection is ociwf.lifecycle: the lifecycle pull rule.
type lifecycleSection struct {
	RestrictPulls []lifecycle.State `yaml:"restrictPulls"`
	Readers       []string          `yaml:"readers"`
	Policy        string            `yaml:"policy"`
}

// LoadConfig reads a configuration file: see ParseConfig.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("registry configuration: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("registry configuration %s: %w", path, err)
	}
	if len(b) > MaxConfigBytes {
		return Config{}, fmt.Errorf("registry configuration %s: over %d bytes: %w", path, MaxConfigBytes, errdef.ErrTooLarge)
	}
	return ParseConfig(path, b)
}

// ParseConfig reads a configuration file, file naming it: a Distribution
// configuration (configuration.Parse, environment overrides included) that
// may carry a section of ociwf's own, which Distribution ignores:
//
//	ociwf:
//	  lifecycle:
//	    restrictPulls: [retired, archived]  # the default
//	    readers: [auditor]                  # user names auth authenticates
//	    policy: trust-policy.yaml           # required
//	  alerts:
//	    webhook:                            # see AlertWebhook
//	      url: http://alertmanager:9093/api/v2/alerts
//	      timeout: 1s
//	      threshold: 10
//	      backoff: 1s
//	      queue: 1024
//	      headers: {Authorization: [Bearer …]}
//	  coordination:                         # see Coordination
//	    mode: redis                         # inprocess (default), filesystem, redis
//	    wait: 30s
//	    cacheTTL: 5s
//	    dir: /shared/locks                  # filesystem; default <root>/ociwf/locks
//	    redis: {addr: "redis:6379", password: …, db: 0, lease: 10s}
//
// Redis coordination without redis.addr uses the Redis of Distribution's
// own redis section (one address, its db and credentials).
// The Config returned has Distribution set and, for an ociwf.lifecycle
// section, Lifecycle (and for ociwf.alerts, Alerts), with Policy resolved against the file's directory
// and State unset: the program serving it builds State from the trust
// policy. Unknown keys in the ociwf section, unknown states and a missing
// policy are errors matching errdef.ErrInvalid.
func ParseConfig(file string, src []byte) (Config, error) {
	conf, err := configuration.Parse(bytes.NewReader(src))
	if err != nil {
		return Config{}, fmt.Errorf("distribution configuration %s: %w", file, err)
	}
	cfg := Config{Distribution: conf}
	var top struct {
		Ociwf yaml.Node `yaml:"ociwf"`
	}
	if err := yaml.Unmarshal(src, &top); err != nil {
		return Config{}, fmt.Errorf("registry configuration %s: %v: %w", file, err, errdef.ErrInvalid)
	}
	if top.Ociwf.Kind == 0 {
		return cfg, nil
	}
	// Decoded again from its own text, strictly: a misspelt key would
	// otherwise switch a rule off without a word.
	raw, err := yaml.Marshal(&top.Ociwf)
	if err != nil {
		return Config{}, fmt.Errorf("registry configuration %s: ociwf: %v: %w", file, err, errdef.ErrInvalid)
	}
	var sec fileSection
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&sec); err != nil && err != io.EOF {
		return Config{}, fmt.Errorf("registry configuration %s: ociwf section (line %d): %v: %w", file, top.Ociwf.Line, err, errdef.ErrInvalid)
	}
	if l := sec.Lifecycle; l != nil {
		if l.Policy == "" {
			return Config{}, fmt.Errorf("registry configuration %s: ociwf.lifecycle: no policy: name the trust policy whose lifecycle signers decide a version's state: %w", file, errdef.ErrInvalid)
		}
		for _, s := range l.RestrictPulls {
			if !s.Valid() {
				return Config{}, fmt.Errorf("registry configuration %s: ociwf.lifecycle.restrictPulls: unknown state %q; states are %s: %w", file, s, joinStates(lifecycle.States(), ", "), errdef.ErrInvalid)
			}
		}
		for _, r := range l.Readers {
			if r == "" {
				return Config{}, fmt.Errorf("registry configuration %s: ociwf.lifecycle.readers: an empty user name: %w", file, errdef.ErrInvalid)
			}
		}
		policy := l.Policy
		if !filepath.IsAbs(policy) {
			policy = filepath.Join(filepath.Dir(file), policy)
		}
		cfg.Lifecycle = &LifecycleReads{States: l.RestrictPulls, Readers: l.Readers, Policy: policy}
	}
	if c := sec.Coordination; c != nil {
		co := Coordination{Mode: c.Mode, Dir: c.Dir, Wait: c.Wait, CacheTTL: c.CacheTTL}
		if r := c.Redis; r != nil {
			co.Redis = RedisCoordination{Addr: r.Addr, Username: r.Username, Password: r.Password, DB: r.DB, Lease: r.Lease, Prefix: r.Prefix}
		}
		// Without an address of its own, the Redis Distribution's
		// configuration names (redis.addrs, one node).
		if o := conf.Redis.Options; co.Mode == CoordinationRedis && co.Redis.Addr == "" && len(o.Addrs) == 1 {
			co.Redis.Addr, co.Redis.DB = o.Addrs[0], o.DB
			if co.Redis.Username == "" && co.Redis.Password == "" {
				co.Redis.Username, co.Redis.Password = o.Username, o.Password
			}
		}
		if err := co.validate(); err != nil {
			return Config{}, fmt.Errorf("registry configuration %s: ociwf.coordination: %w", file, err)
		}
		if co.Dir != "" && !filepath.IsAbs(co.Dir) {
			co.Dir = filepath.Join(filepath.Dir(file), co.Dir)
		}
		cfg.Coordination = co
	}
	if a := sec.Alerts; a != nil && a.Webhook != nil {
		w := a.Webhook
		hook := AlertWebhook{URL: w.URL, Timeout: w.Timeout, Threshold: w.Threshold, Backoff: w.Backoff, Headers: http.Header(w.Headers), QueueSize: w.Queue}
		if _, err := hook.validate(); err != nil {
			return Config{}, fmt.Errorf("registry configuration %s: ociwf.alerts.webhook: %w", file, err)
		}
		cfg.Alerts.Webhook = &hook
	}
	return cfg, nil
}
