// Pure Kotlin/JVM: no Android imports, so it compiles and tests anywhere (also without Gradle:
// ../scripts/build-core.mjs compiles it with kotlinc for `npm test`).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

// Bytecode for Java 17 (Android's desugaring handles the rest) from whatever JDK >= 17 runs Gradle.
java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

dependencies {
    // `api`: OkHttpTransport takes an OkHttpClient, so the app sees OkHttp's types.
    api(libs.okhttp)
    // Android provides org.json at run time; on the JVM the same API comes from android-json.
    compileOnly(libs.android.json)
    testImplementation(libs.android.json)
    testImplementation(libs.kotlin.test.junit)
    testImplementation(libs.junit)
}

tasks.test {
    useJUnit()
    // The tests read protocol/vectors from the repository.
    systemProperty("nexmdm.repo", rootDir.parentFile.absolutePath)
    testLogging { events("failed"); showStandardStreams = true }
}
