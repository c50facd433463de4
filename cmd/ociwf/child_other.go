//go:build !linux

package main

import "os/exec"

// startChild starts c; wait must be called exactly once.
func startChild(c *exec.Cmd) (wait func() error, err error) {
	if err := c.Start(); err != nil {
		return nil, err
	}
	return c.Wait, nil
}
