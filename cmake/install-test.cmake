# ctest "install_consumer": installs the build tree into a temporary prefix, then builds and runs
# a consumer project found through find_package(rmqstream) (shared and static targets) and a
# program compiled with the flags from the installed rmqstream.pc.
# Run as: cmake -DBUILD_DIR=... -DWORK_DIR=... -DCONSUMER_DIR=... -DC_COMPILER=...
#               -DPKG_CONFIG=... -DGENERATOR=... -P install-test.cmake
cmake_minimum_required(VERSION 3.16)

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        string(REPLACE ";" " " cmd "${ARGN}")
        message(FATAL_ERROR "install-test: failed (${rc}): ${cmd}\n${out}\n${err}")
    endif()
    set(RUN_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")
file(GLOB_RECURSE installed RELATIVE "${prefix}" "${prefix}/*")
list(SORT installed)
string(REPLACE ";" "\n  " listing "${installed}")
message(STATUS "installed into ${prefix}:\n  ${listing}")

# The ELF layout: librmqstream.so.X.Y.Z, and the links librmqstream.so.X and librmqstream.so.
file(GLOB_RECURSE sonames LIST_DIRECTORIES false "${prefix}/*/librmqstream.so.[0-9]")
list(LENGTH sonames n_sonames)
if(NOT n_sonames EQUAL 1 OR NOT IS_SYMLINK "${sonames}")
    message(FATAL_ERROR "install-test: expected one link librmqstream.so.<ABI>, got '${sonames}'")
endif()
get_filename_component(libdir_installed "${sonames}" DIRECTORY)
get_filename_component(soname "${sonames}" NAME)
file(READ_SYMLINK "${libdir_installed}/librmqstream.so" dev_link)
file(READ_SYMLINK "${sonames}" real)
if(NOT dev_link STREQUAL soname OR NOT real MATCHES "^${soname}\\.[0-9]+\\.[0-9]+$"
   OR IS_SYMLINK "${libdir_installed}/${real}")
    message(FATAL_ERROR "install-test: librmqstream.so -> ${dev_link}, ${soname} -> ${real}")
endif()

# find_package() consumer
run("${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${WORK_DIR}/consumer" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_C_COMPILER=${C_COMPILER}"
    -DCMAKE_BUILD_TYPE=Release)
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/consumer")
foreach(exe consumer_shared consumer_static)
    run("${WORK_DIR}/consumer/${exe}")
    message(STATUS "${exe}: ${RUN_OUTPUT}")
endforeach()
# the program depends on the library's SONAME, not on a path or the unversioned name
find_program(READELF readelf)
if(READELF)
    run("${READELF}" -d "${WORK_DIR}/consumer/consumer_shared")
    if(NOT RUN_OUTPUT MATCHES "NEEDED[^\n]*\\[${soname}\\]")
        message(FATAL_ERROR "install-test: consumer_shared does not need ${soname}:\n${RUN_OUTPUT}")
    endif()
endif()

# pkg-config consumer
if(PKG_CONFIG)
    file(GLOB_RECURSE pc_file "${prefix}/*/rmqstream.pc")
    get_filename_component(pc_dir "${pc_file}" DIRECTORY)
    run("${CMAKE_COMMAND}" -E env "PKG_CONFIG_PATH=${pc_dir}" "${PKG_CONFIG}"
        --cflags --libs rmqstream)
    string(STRIP "${RUN_OUTPUT}" flags)
    separate_arguments(flags UNIX_COMMAND "${flags}")
    run("${CMAKE_COMMAND}" -E env "PKG_CONFIG_PATH=${pc_dir}" "${PKG_CONFIG}"
        --variable=libdir rmqstream)
    string(STRIP "${RUN_OUTPUT}" libdir)
    run("${C_COMPILER}" -std=c11 -Wall -Wextra -Werror -pedantic
        "${CONSUMER_DIR}/main.c" ${flags} "-Wl,-rpath,${libdir}" -o "${WORK_DIR}/consumer_pc")
    run("${WORK_DIR}/consumer_pc")
    message(STATUS "consumer_pc (${flags}): ${RUN_OUTPUT}")
else()
    message(STATUS "pkg-config not found: pkg-config consumer skipped")
endif()

message("install-test: ok")
