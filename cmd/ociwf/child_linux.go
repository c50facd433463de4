package main

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startChild starts c so that the kernel kills it if ociwf dies first
// (kill -9 included): a registry left serving after its parent is gone
// would hold its port and its storage's serving lock. The death signal
// follows the thread that started the child, so that thread stays locked
// until the child is waited for; wait must be called exactly once.
func startChild(c *exec.Cmd) (wait func() error, err error) {
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	result := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		result <- c.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return func() error { return <-result }, nil
}
