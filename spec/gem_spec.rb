# frozen_string_literal: true

require "spec_helper"
require "open3"

# The gem as users get it: `lunar-server` (rubygems.org's `lunar` is another project), and
# its x86_64-linux platform gem with the compiled core inside, installed and serving on a
# machine whose PATH has no Rust toolchain.
RSpec.describe "the lunar-server platform gem" do
  let(:dir) { scratch_dir("lunar-gem") }
  let(:ruby) { RbConfig.ruby }

  # Only Ruby on PATH: no cargo, no rustc, no compiler.
  def bare_env
    bin = File.join(dir, "path")
    FileUtils.mkdir_p(bin)
    FileUtils.ln_s(ruby, File.join(bin, "ruby"))
    { "PATH" => bin, "HOME" => dir, "GEM_HOME" => File.join(dir, "gems"),
      "GEM_PATH" => [File.join(dir, "gems"), *Gem.path].join(":"), "RUBYLIB" => nil, "RUBYOPT" => nil, "BUNDLE_GEMFILE" => nil }
  end

  def run!(env, *argv, chdir: dir)
    out, status = Open3.capture2e(env, *argv, chdir: chdir)
    expect(status.success?).to be(true), "#{argv.join(' ')}:\n#{out}"
    out
  end

  let(:platform_gem) do
    run!({}, ruby, "-S", "rake", "clobber_package", "native", "gem", chdir: ProcessHelpers::ROOT) # pkg/ afresh: no stale copies
    Dir[File.join(ProcessHelpers::ROOT, "pkg", "lunar-server-#{Lunar::VERSION}-x86_64-linux*.gem")].first
  end

  it "installs without Rust, serves, and loads through Bundler's `gem \"lunar-server\"`" do
    env = bare_env
    expect(system(env, "cargo --version", out: File::NULL, err: File::NULL)).to be_falsey
    installed = run!(env, ruby, File.join(RbConfig::CONFIG["bindir"], "gem"), "install", "--local", "--no-document", platform_gem)
    expect(installed).to match(/Successfully installed lunar-server-#{Regexp.escape(Lunar::VERSION)}-x86_64-linux/)
    library = Dir[File.join(dir, "gems", "gems", "lunar-server-*", "lib", "lunar", "lunar.so")]
    expect(library.size).to eq(1)

    File.write(File.join(dir, "config.ru"), "run ->(env) { [200, {}, ['served by ' + $LOADED_FEATURES.grep(/lunar\\.so/).first]] }\n")
    child = spawn_child([File.join(dir, "gems", "bin", "lunar"), "-b", "tcp://127.0.0.1:0"], env: env.merge("RUBYLIB" => nil), chdir: dir)
    port = child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1]
    expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to eq("served by #{library.first}")

    File.write(File.join(dir, "Gemfile"), "source \"https://rubygems.org\"\ngem \"lunar-server\"\n")
    loaded = run!(env.merge("BUNDLE_GEMFILE" => File.join(dir, "Gemfile")), ruby, "-e",
                  'require "bundler"; Bundler.require; print Lunar::Server.name, " ", Lunar::Native::Server.name')
    expect(loaded).to end_with("Lunar::Server Lunar::Native::Server")
  end
end
