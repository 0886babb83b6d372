// NexMDM Android agent: `core` is pure Kotlin/JVM (protocol, outbox, verifier, connection
// manager), `app` is the Android application that plugs platform services into it.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "nexmdm-agent"
include(":core", ":app")
