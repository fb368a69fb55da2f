//go:build pkgconfig

package rmqstream

// With `-tags pkgconfig`: an installed library found through rmqstream.pc (installed by the
// CMake build: `cmake --install`). Set PKG_CONFIG_PATH when the prefix is not a default one.

/*
#cgo pkg-config: rmqstream
*/
import "C"
