{
  "targets": [
    {
      "target_name": "statespace",
      "sources": ["<!@(node scripts/sources.js)"],
      "include_dirs": ["csrc", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-fno-math-errno"],
      "conditions": [
        ["target_arch=='x64'", { "cflags_cc": ["-march=x86-64-v3"] }]
      ]
    }
  ]
}
