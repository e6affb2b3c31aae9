# frozen_string_literal: true

require "fileutils"
require "tmpdir"

# Temporary directories the suite makes, removed once done with: an example's when it ends
# (after its servers and child processes are gone), the run's shared ones (certificates,
# redis-server's) when the run ends. Run after run, the suite leaves nothing in /tmp.
module ScratchDirs
  # A fresh directory, removed after the current example.
  def scratch_dir(prefix)
    Dir.mktmpdir(prefix).tap { |dir| (@scratch_dirs ||= []) << dir }
  end

  # A fresh directory for the whole run, removed when this process ends.
  def self.for_the_run(prefix)
    owner = Process.pid
    Dir.mktmpdir(prefix).tap { |dir| at_exit { FileUtils.rm_rf(dir) if Process.pid == owner } }
  end
end

RSpec.configure do |config|
  config.include ScratchDirs
  config.after { FileUtils.rm_rf(@scratch_dirs) if @scratch_dirs }
end
