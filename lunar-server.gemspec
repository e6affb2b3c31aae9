# frozen_string_literal: true

require_relative "lib/lunar/version"

Gem::Specification.new do |s|
  # The gem is `lunar-server`: `lunar` on rubygems.org is another project (a Redis search
  # library, also `module Lunar`). The module, the `lunar` command and the Rack handler keep
  # the name; lib/lunar-server.rb is what Bundler's `gem "lunar-server"` requires.
  s.name = "lunar-server"
  s.version = Lunar::VERSION
  s.summary = "A Rack server in Rust (hyper on tokio) that honours Thin's async responses"
  s.description = "Lunar serves Rack 2 and Rack 3 apps over HTTP/1.1, HTTP/2 and TLS from a Rust core (hyper on " \
                  "tokio). Ruby threads only run Ruby; sockets, parsing and writing happen in Rust."
  s.authors = ["The Lunar developers"]
  s.license = "MIT"
  s.required_ruby_version = ">= 3.1"
  s.add_dependency "rack", ">= 2.2", "< 4"
  # No root Cargo.toml: the repository's workspace also lists benchmark crates that the gem
  # does not ship; ext/lunar/extconf.rb builds the crate standalone with the root Cargo.lock.
  s.files = Dir["lib/**/*.rb", "exe/*", "ext/lunar/extconf.rb", "ext/lunar/Cargo.toml", "ext/lunar/src/**/*.rs",
                "Cargo.lock", ".cargo/config.toml", "README.md", "LICENSE", "docs/*.md"]
  s.bindir = "exe"
  s.executables = %w[lunar lunarctl]
  s.extensions = ["ext/lunar/extconf.rb"]
  s.require_paths = ["lib"]
  s.metadata["rubygems_mfa_required"] = "true"
end
