# Android arm64-v8a through the NDK's own toolchain file ($ANDROID_NDK must be set).
if(NOT DEFINED ENV{ANDROID_NDK})
  message(FATAL_ERROR "set ANDROID_NDK to your Android NDK (https://developer.android.com/ndk/downloads)")
endif()
set(ANDROID_ABI arm64-v8a)
set(ANDROID_PLATFORM android-24)
include("$ENV{ANDROID_NDK}/build/cmake/android.toolchain.cmake")
