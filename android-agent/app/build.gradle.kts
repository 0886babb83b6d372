plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

// Release signing from the environment (CI secrets or a local keystore); without it the release
// APK is built unsigned and can be signed afterwards with apksigner (README "Sign").
val keystorePath: String? = System.getenv("NEXMDM_KEYSTORE_FILE")

android {
    namespace = "com.nexmdm.agent"
    compileSdk = 35

    defaultConfig {
        applicationId = "com.nexmdm.agent"
        minSdk = 26
        targetSdk = 35
        // CI passes -Pnexmdm.versionCode=<run number>: the engine's registry refuses an upload whose
        // versionCode does not increase within its channel.
        versionCode = (project.findProperty("nexmdm.versionCode") as String?)?.toInt() ?: 1
        versionName = (project.findProperty("nexmdm.versionName") as String?) ?: "0.1.0"
        // Firebase is initialised by hand (no google-services plugin, no google-services.json in the
        // repository): these come from Gradle properties, and FCM wake-ups are off when they are empty.
        buildConfigField("String", "FCM_PROJECT_ID", "\"${project.findProperty("nexmdm.fcm.projectId") ?: ""}\"")
        buildConfigField("String", "FCM_APPLICATION_ID", "\"${project.findProperty("nexmdm.fcm.applicationId") ?: ""}\"")
        buildConfigField("String", "FCM_API_KEY", "\"${project.findProperty("nexmdm.fcm.apiKey") ?: ""}\"")
        buildConfigField("String", "FCM_SENDER_ID", "\"${project.findProperty("nexmdm.fcm.senderId") ?: ""}\"")
    }

    signingConfigs {
        if (keystorePath != null) {
            create("release") {
                storeFile = file(keystorePath)
                storePassword = System.getenv("NEXMDM_KEYSTORE_PASSWORD")
                keyAlias = System.getenv("NEXMDM_KEY_ALIAS")
                keyPassword = System.getenv("NEXMDM_KEY_PASSWORD")
            }
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            if (keystorePath != null) signingConfig = signingConfigs.getByName("release")
        }
    }

    buildFeatures {
        buildConfig = true
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }


    lint {
        // Findings are reported in build/reports/lint-results-*.html by the workflow's lint step.
        checkReleaseBuilds = true
        abortOnError = true
    }

    testOptions {
        unitTests.isReturnDefaultValues = true
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.okhttp)
    implementation(libs.firebase.messaging)
    testImplementation(libs.junit)
    testImplementation(libs.kotlin.test.junit)
}
