//go:build !pkgconfig

package rmqstream

// Default: the in-tree build. `cargo build --release` at the repository root puts
// librmqstream.so in target/release; the header is include/rmqstream.h. The rpath lets test
// binaries and programs built here find the library without LD_LIBRARY_PATH.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -lrmqstream -Wl,-rpath,${SRCDIR}/../../target/release
*/
import "C"
