package ociwf_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
)

// TestSizeLimitsHoldEndToEnd checks that the limits readers enforce are the
// ones Compile and Push enforce: a source at the limit publishes and reads
// back, and anything over a limit is refused with ErrTooLarge before a
// byte is written.
func TestSizeLimitsHoldEndToEnd(t *testing.T) {
	ctx := context.Background()
	base := readSample(t, "build-test-release.yaml")
	// A source of exactly MaxSourceBytes: the sample padded with a comment.
	atLimit := append(append([]byte{}, base...), '#')
	atLimit = append(atLimit, bytes.Repeat([]byte("x"), ociwf.MaxSourceBytes-len(atLimit)-1)...)
	atLimit = append(atLimit, '\n')
	// A description too long for the config blob.
	longDesc := bytes.Replace(base, []byte("  description: Build, test and release a Go service.\n"),
		[]byte("  description: "+strings.Repeat("d", ociwf.MaxConfigBytes)+"\n"), 1)
	if bytes.Equal(longDesc, base) {
		t.Fatal("sample description not found")
	}
	if _, err := ociwf.Compile(ctx, longDesc, ociwf.CompileOptions{}); !errors.Is(err, errdef.ErrTooLarge) || !strings.Contains(err.Error(), "config blob") {
		t.Fatalf("compile with a %d-byte description: err = %v, want ErrTooLarge naming the config blob", ociwf.MaxConfigBytes, err)
	}
	for kind, dst := range places(t) {
		t.Run(kind, func(t *testing.T) {
			b, err := ociwf.Compile(ctx, atLimit, ociwf.CompileOptions{})
			if err != nil {
				t.Fatalf("compile at the limit: %v", err)
			}
			if _, err := ociwf.Push(ctx, dst.Storage, b, "1.0.0", ociwf.PushOptions{}); err != nil {
				t.Fatalf("push at the limit: %v", err)
			}
			if _, err := ociwf.Pull(ctx, dst.Storage, "1.0.0", t.TempDir(), ociwf.WriteOptions{}); err != nil {
				t.Fatalf("pull at the limit: %v", err)
			}

			// Annotations that take the manifest over its limit.
			small := compileSample(t, "fan-out-fan-in.yaml")
			opts := ociwf.PackOptions{Annotations: map[string]string{"big": strings.Repeat("a", ociwf.MaxManifestBytes)}}
			_, err = ociwf.Push(ctx, dst.Storage, small, "2.0.0", ociwf.PushOptions{PackOptions: opts})
			if !errors.Is(err, errdef.ErrTooLarge) || !strings.Contains(err.Error(), "manifest") {
				t.Fatalf("push of an oversized manifest: err = %v, want ErrTooLarge naming the manifest", err)
			}
			if found := stored(t, dst.Storage, small, opts); len(found) != 0 {
				t.Fatalf("the refused push wrote %v", found)
			}
		})
	}
}
