package registryext

import (
	"reflect"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
)

// The built-in configuration (--root, or in memory) purges abandoned
// uploads and pages the catalog and tag lists with stock Distribution's
// defaults; so does a configuration built in code that leaves them out.
func TestDistributionConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		purge bool
	}{
		{"root", Config{Root: t.TempDir()}, true},
		{"in memory", Config{}, true},
		{"built in code", Config{Distribution: &configuration.Configuration{Storage: configuration.Storage{"inmemory": {}}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := distributionConfig(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if conf.Catalog.MaxEntries != 1000 || conf.Tags.MaxTags != 1000 {
				t.Errorf("catalog.maxentries %d, tags.maxtags %d", conf.Catalog.MaxEntries, conf.Tags.MaxTags)
			}
			if !tc.purge {
				return
			}
			want := map[any]any{"enabled": true, "age": "168h", "interval": "24h", "dryrun": false}
			if got := conf.Storage["maintenance"]["uploadpurging"]; !reflect.DeepEqual(got, want) {
				t.Errorf("storage.maintenance.uploadpurging %v, want %v", got, want)
			}
		})
	}
}
