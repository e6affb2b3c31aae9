# frozen_string_literal: true

# The gem is called `lunar-server` (rubygems.org's `lunar` is another project); Bundler's
# autorequire for `gem "lunar-server"` loads this file, and Lunar itself is "lunar".
require "lunar"
