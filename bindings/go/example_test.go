package rmqstream

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The example program builds and runs against the broker.
func TestQuickstartExample(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "run", "./examples/quickstart", "-n", "2000", testURI())
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "consumed 2000 messages, offsets and bodies checked") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	t.Logf("%s", out)
}
