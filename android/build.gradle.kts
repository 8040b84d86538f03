// Android library module for moq-ffi (Kotlin). Not built on this project's CI (no Android
// SDK/NDK there); see README.md for the exact commands.
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.2.21"
}

android {
    namespace = "dev.moqkit"
    compileSdk = 35
    defaultConfig { minSdk = 24 }
    sourceSets["main"].apply {
        // The generated bindings and the idiomatic layer shared with the JVM package.
        java.srcDirs("../bindings/kotlin", "../kotlin-sample/src/main/kotlin")
        // libmoqkit.so per ABI, produced by ../scripts/build-android.
        jniLibs.srcDirs("src/main/jniLibs")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}
